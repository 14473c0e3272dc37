package apply

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// A tenant pre-creates the Secret with exactly our labels and annotations:
// it is refused on apply, and a delete with deleteResources keeps it.
func TestSpoofedSecretIsRefusedAndNeverDeleted(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	spoof := withUID(objs.Secret.DeepCopy(), "tenant-uid")
	spoof.Data = map[string][]byte{"theirs": []byte("x")}
	client := newClient(namespace(ns), spoof)
	a := New(client, nil)

	_, err := a.Apply(context.Background(), fresh("db1"), objs)
	require.ErrorIs(t, err, ErrSecretIsOwned)
	assert.True(t, Permanent(err))
	assert.Equal(t, "Secret team-a/sc-db1-secret carries sc-extension's labels but was not created by sc-extension "+
		"(its UID is in no connection record)", err.Error())
	assert.Equal(t, []string{"get namespaces /team-a", "get secrets team-a/sc-db1-secret"}, fakeactions.Of(client), "never written")

	client.ClearActions()
	res, err := a.Delete(context.Background(), fresh("db1"), objs.Refs(), nil)
	require.NoError(t, err)
	assert.Equal(t, []Object{{Ref: ref(render.KindSecret, ns, "sc-db1-secret"), Outcome: Kept}}, res.Objects)
	assert.Equal(t, []string{"get secrets team-a/sc-db1-secret"}, fakeactions.Of(client), "never deleted")
}

func TestSpoofedServiceAccountIsRefusedAndNeverDeleted(t *testing.T) {
	objs := mustRender(t, wiConn("kv1"), nil)
	spoof := withUID(objs.ServiceAccount.DeepCopy(), "tenant-uid")
	client := newClient(namespace(ns), spoof)
	a := New(client, nil)

	_, err := a.Apply(context.Background(), fresh("kv1"), render.Objects{ServiceAccount: objs.ServiceAccount})
	require.ErrorIs(t, err, ErrServiceAccountIsOwned)
	assert.Equal(t, []string{"get namespaces /team-a", "get serviceaccounts team-a/" + spoof.Name}, fakeactions.Of(client))

	client.ClearActions()
	res, err := a.Delete(context.Background(), fresh("kv1"), []connection.ResourceRef{ref(render.KindServiceAccount, ns, spoof.Name)}, nil)
	require.NoError(t, err)
	assert.Equal(t, Result{Kept: 1}, counts(res))
	assert.Equal(t, []string{"get serviceaccounts team-a/" + spoof.Name}, fakeactions.Of(client))
}

// Our own object, its labels stripped by hand: the UID proves it ours, so
// it is repaired (labels restored), not refused.
func TestOwnObjectIsUpdatedWhateverItsLabels(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	live := withUID(objs.Secret.DeepCopy(), "our-uid")
	live.Labels = map[string]string{"team": "x"}
	client := newClient(namespace(ns), live)

	res, err := New(client, nil).Apply(context.Background(), owning("db1", render.KindSecret, live), objs)
	require.NoError(t, err)
	assert.Equal(t, []Object{{Ref: ref(render.KindSecret, ns, "sc-db1-secret"), Outcome: Updated, UID: "our-uid"}}, res.Objects)
	assert.Equal(t, []string{
		"get namespaces /team-a", "get secrets team-a/sc-db1-secret", "update secrets team-a/sc-db1-secret",
	}, fakeactions.Of(client))
	got, err := client.CoreV1().Secrets(ns).Get(context.Background(), "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, render.ManagedByValue, got.Labels[render.LabelManagedBy])
	assert.Equal(t, "x", got.Labels["team"])
}

// Drift repair of a deleted object: it is created again and the new UID is
// returned for the record, replacing the old one.
func TestCreatedObjectReturnsItsNewUID(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	client := newClient(namespace(ns))
	own := fresh("db1")
	own.Owned = []connection.OwnedObject{{ResourceRef: ref(render.KindSecret, ns, "sc-db1-secret"), UID: "deleted-uid"}}

	res, err := New(client, nil).Apply(context.Background(), own, objs)
	require.NoError(t, err)
	assert.Equal(t, []Object{{Ref: ref(render.KindSecret, ns, "sc-db1-secret"), Outcome: Created, UID: "created-secrets-1"}}, res.Objects)
}

// Our object was deleted and a tenant's took its name: the record's UID no
// longer matches, so the newcomer is refused and kept, whatever its labels.
func TestReplacedObjectIsNotOurs(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	replacement := withUID(objs.Secret.DeepCopy(), "tenant-uid")
	client := newClient(namespace(ns), replacement)
	own := fresh("db1")
	own.Owned = []connection.OwnedObject{{ResourceRef: ref(render.KindSecret, ns, "sc-db1-secret"), UID: "our-old-uid"}}
	own.Rendered = objs.Refs()
	a := New(client, nil)

	_, err := a.Apply(context.Background(), own, objs)
	require.ErrorIs(t, err, ErrSecretIsOwned, "a recorded UID ends the migration rule for that object")
	res, err := a.Delete(context.Background(), own, objs.Refs(), nil)
	require.NoError(t, err)
	assert.Equal(t, Result{Kept: 1}, counts(res))
	assert.Empty(t, fakeactions.Writes(client.Actions()))
}

// A tenant wins the race between our read and our create: the create's
// AlreadyExists re-reads, and the winner is judged like any other object.
func TestCreateRaceLostToTenantIsRefused(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	client := newClient(namespace(ns))
	spoof := withUID(objs.Secret.DeepCopy(), "tenant-uid")
	client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		require.NoError(t, client.Tracker().Add(spoof))
		return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "secrets"}, spoof.Name)
	})
	_, err := New(client, nil).Apply(context.Background(), fresh("db1"), objs)
	require.ErrorIs(t, err, ErrSecretIsOwned)
	assert.Equal(t, []string{
		"get namespaces /team-a", "get secrets team-a/sc-db1-secret", "create secrets team-a/sc-db1-secret",
		"get secrets team-a/sc-db1-secret",
	}, fakeactions.Of(client), "no update of the winner")
}

// Every delete names the UID the record holds as a precondition, so the
// API server refuses to delete an object that replaced ours after the read.
func TestDeleteCarriesRecordedUIDPrecondition(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	live := withUID(objs.Secret.DeepCopy(), "our-uid")
	live.ResourceVersion = "7"
	client := newClient(namespace(ns), live)

	res, err := New(client, nil).Delete(context.Background(), owning("db1", render.KindSecret, live), objs.Refs(), nil)
	require.NoError(t, err)
	assert.Equal(t, Result{Deleted: 1}, counts(res))
	assert.Equal(t, []string{"get secrets team-a/sc-db1-secret", "delete secrets team-a/sc-db1-secret"}, fakeactions.Of(client))
	del := client.Actions()[1].(k8stesting.DeleteActionImpl).GetDeleteOptions()
	require.NotNil(t, del.Preconditions)
	assert.Equal(t, types.UID("our-uid"), *del.Preconditions.UID)
	assert.Equal(t, "7", *del.Preconditions.ResourceVersion)
}

// The delete lost a race: between our read and our delete the object was
// replaced (the API server answers the UID precondition with Conflict). The
// re-read finds the replacement, which is not ours: kept.
func TestDeleteKeepsObjectReplacedAfterRead(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	live := withUID(objs.Secret.DeepCopy(), "our-uid")
	client := newClient(namespace(ns), live)
	client.PrependReactor("delete", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		replacement := withUID(objs.Secret.DeepCopy(), "tenant-uid")
		require.NoError(t, client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("secrets"), replacement, ns))
		return true, nil, conflictErr("secrets", live.Name)
	})
	res, err := New(client, nil).Delete(context.Background(), owning("db1", render.KindSecret, live), objs.Refs(), nil)
	require.NoError(t, err)
	assert.Equal(t, Result{Kept: 1}, counts(res))
	assert.Equal(t, []string{
		"get secrets team-a/sc-db1-secret", "delete secrets team-a/sc-db1-secret", "get secrets team-a/sc-db1-secret",
	}, fakeactions.Of(client))
}

// A ServiceAccount shared by connections with one client id: kv1's record
// holds its UID, so kv2 (whose record does not yet) finds it ours and gets
// the UID for its own record; a run that never saw kv1's record refuses it.
func TestSharedServiceAccountIsOursThroughAnyRecord(t *testing.T) {
	kv1 := wiConn("kv1")
	sa := withUID(mustRender(t, kv1, nil).ServiceAccount, "sa-uid")
	kv1.Status.Owned = []connection.OwnedObject{{ResourceRef: ref(render.KindServiceAccount, ns, sa.Name), UID: "sa-uid"}}
	want := render.Objects{ServiceAccount: mustRender(t, wiConn("kv2"), nil).ServiceAccount}

	_, err := New(newClient(namespace(ns), sa.DeepCopy()), nil).Apply(context.Background(), fresh("kv2"), want)
	require.ErrorIs(t, err, ErrServiceAccountIsOwned, "without the records, labels alone prove nothing")

	client := newClient(namespace(ns), sa.DeepCopy())
	a := New(client, nil)
	a.Recorded([]connection.Connection{kv1})
	res, err := a.Apply(context.Background(), fresh("kv2"), want)
	require.NoError(t, err)
	assert.Equal(t, []Object{{Ref: ref(render.KindServiceAccount, ns, sa.Name), Outcome: Unchanged, UID: "sa-uid"}}, res.Objects)

	// kv1 deleted with its resources while kv2 no longer uses the account:
	// kv1's recorded UID lets it go, with that UID as the precondition.
	client.ClearActions()
	res, err = a.Delete(context.Background(), OwnerOf(kv1), []connection.ResourceRef{ref(render.KindServiceAccount, ns, sa.Name)}, nil)
	require.NoError(t, err)
	assert.Equal(t, Result{Deleted: 1}, counts(res))
	assert.Equal(t, types.UID("sa-uid"), *client.Actions()[1].(k8stesting.DeleteActionImpl).GetDeleteOptions().Preconditions.UID)
}

// The migration rule: a record written before UIDs were recorded lists
// what it rendered. Such an object, labelled for this connection, is
// adopted and its UID returned for the record; an object the record does
// not list, or labelled for another connection, is not.
func TestLegacyRecordAdoptsWhatItListsOnce(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	legacy := Owner{ID: "db1", Rendered: objs.Refs()} // Status.Resources, no Status.Owned

	live := withUID(objs.Secret.DeepCopy(), "old-release-uid")
	client := newClient(namespace(ns), live)
	res, err := New(client, nil).Apply(context.Background(), legacy, objs)
	require.NoError(t, err)
	assert.Equal(t, []Object{{Ref: ref(render.KindSecret, ns, "sc-db1-secret"), Outcome: Unchanged, UID: "old-release-uid"}}, res.Objects)

	for name, tc := range map[string]struct {
		own   Owner
		label string
	}{
		"not listed by the record":         {own: fresh("db1"), label: "db1"},
		"labelled for another connection":  {own: legacy, label: "db2"},
		"a UID is recorded, another's now": {own: Owner{ID: "db1", Rendered: objs.Refs(), Owned: []connection.OwnedObject{{ResourceRef: objs.Refs()[0], UID: "x"}}}, label: "db1"},
	} {
		t.Run(name, func(t *testing.T) {
			live := withUID(objs.Secret.DeepCopy(), "tenant-uid")
			live.Labels[render.LabelConnection] = tc.label
			client := newClient(namespace(ns), live)
			a := New(client, nil)
			_, err := a.Apply(context.Background(), tc.own, objs)
			require.ErrorIs(t, err, ErrSecretIsOwned)
			res, err := a.Delete(context.Background(), tc.own, objs.Refs(), nil)
			require.NoError(t, err)
			assert.Equal(t, Result{Kept: 1}, counts(res))
			assert.Empty(t, fakeactions.Writes(client.Actions()))
		})
	}

	// A legacy shared ServiceAccount the record lists is adopted too.
	wi := mustRender(t, wiConn("kv1"), nil)
	sa := withUID(wi.ServiceAccount.DeepCopy(), "old-sa-uid")
	res, err = New(newClient(namespace(ns), sa), nil).Apply(context.Background(),
		Owner{ID: "kv1", Rendered: wi.Refs()}, render.Objects{ServiceAccount: wi.ServiceAccount})
	require.NoError(t, err)
	assert.Equal(t, "old-sa-uid", res.Objects[0].UID)
}
