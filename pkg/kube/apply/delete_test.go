package apply

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

func TestDeleteKeepsServiceAccountStillInUse(t *testing.T) {
	kv1 := mustRender(t, wiConn("kv1"), nil)
	kv2 := mustRender(t, wiConn("kv2"), nil)
	sa := withUID(kv1.ServiceAccount, "uid-sa")
	client := newClient(namespace(ns), withUID(kv1.Secret, "uid-kv1"), withUID(kv2.Secret, "uid-kv2"), sa)
	a := New(client, nil)
	saName := kv1.ServiceAccount.Name
	kv1Owner := owning("kv1", render.KindSecret, kv1.Secret)
	kv2Owner := owning("kv2", render.KindSecret, kv2.Secret)
	kv2Owner.Owned = append(kv2Owner.Owned, owning("kv2", render.KindServiceAccount, sa).Owned...)

	inUse := func(n, name string) bool { return n == ns && name == saName } // kv2 still uses it
	res, err := a.Delete(context.Background(), kv1Owner, kv1.Refs(), inUse)
	require.NoError(t, err)
	assert.Equal(t, Result{Deleted: 1, Kept: 1}, counts(res))
	assert.Equal(t, []Object{
		{Ref: ref(render.KindSecret, ns, "sc-kv1-secret"), Outcome: Deleted},
		{Ref: ref(render.KindServiceAccount, ns, saName), Outcome: Kept},
	}, res.Objects)
	assert.Equal(t, []string{
		"get secrets team-a/sc-kv1-secret",
		"delete secrets team-a/sc-kv1-secret",
	}, fakeactions.Of(client), "the shared ServiceAccount is not even read")

	client.ClearActions()
	res, err = a.Delete(context.Background(), kv2Owner, kv2.Refs(), func(string, string) bool { return false })
	require.NoError(t, err)
	assert.Equal(t, Result{Deleted: 2}, counts(res))
	assert.Equal(t, []string{
		"get secrets team-a/sc-kv2-secret",
		"delete secrets team-a/sc-kv2-secret",
		"get serviceaccounts team-a/" + saName,
		"delete serviceaccounts team-a/" + saName,
	}, fakeactions.Of(client))
	for _, act := range client.Actions() {
		if d, ok := act.(interface{ GetDeleteOptions() metav1.DeleteOptions }); ok {
			require.NotNil(t, d.GetDeleteOptions().Preconditions, "every delete is conditional")
			assert.NotNil(t, d.GetDeleteOptions().Preconditions.ResourceVersion)
			assert.NotEmpty(t, *d.GetDeleteOptions().Preconditions.UID)
		}
	}
}

func TestDeleteNeverRemovesForeignObjects(t *testing.T) {
	c, creds := secretConn(t, "db1")
	refs := mustRender(t, c, creds).Refs()
	theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: refs[0].Name}}
	client := newClient(namespace(ns), theirs)
	res, err := New(client, nil).Delete(context.Background(), fresh("db1"), refs, nil)
	require.NoError(t, err)
	assert.Equal(t, Result{Kept: 1}, counts(res))
	assert.Equal(t, []string{"get secrets team-a/sc-db1-secret"}, fakeactions.Of(client))
}

func TestDeleteRetriesWhenObjectChangedSinceRead(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	client := newClient(namespace(ns), withUID(objs.Secret, "uid-1"))
	client.PrependReactor("delete", "secrets", failOnce(conflictErr("secrets", objs.Secret.Name)))
	res, err := New(client, nil).Delete(context.Background(), owning("db1", render.KindSecret, objs.Secret), objs.Refs(), nil)
	require.NoError(t, err)
	assert.Equal(t, Result{Deleted: 1}, counts(res))
	assert.Equal(t, []string{
		"get secrets team-a/sc-db1-secret",
		"delete secrets team-a/sc-db1-secret",
		"get secrets team-a/sc-db1-secret",
		"delete secrets team-a/sc-db1-secret",
	}, fakeactions.Of(client))
}

func TestDeleteGoneIsDone(t *testing.T) {
	client := newClient(namespace(ns))
	res, err := New(client, newDynamic()).Delete(context.Background(), fresh("kvcsi"), render.Refs(csiConn("kvcsi").Spec), nil)
	require.NoError(t, err)
	assert.Equal(t, Result{Kept: 1}, counts(res), "no CSI driver: nothing of ours can exist")
}
