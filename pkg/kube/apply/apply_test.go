package apply

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

func TestApplyCreatesSecret(t *testing.T) {
	c, creds := secretConn(t, "db1")
	client := newClient(namespace(ns))
	res, err := New(client, nil).Apply(context.Background(), fresh("db1"), mustRender(t, c, creds))
	require.NoError(t, err)
	assert.Equal(t, Result{Created: 1}, counts(res))
	assert.Equal(t, []string{
		"get namespaces /team-a",
		"get secrets team-a/sc-db1-secret",
		"create secrets team-a/sc-db1-secret",
	}, fakeactions.Of(client))
	assert.Equal(t, []string{FieldManager}, fieldManagers(client.Actions()))
}

func TestApplyUnchangedMakesNoWrite(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	existing := withUID(objs.Secret.DeepCopy(), "uid-1")
	existing.Annotations["reloader.stakater.com/match"] = "true" // someone else's annotation is fine
	client := newClient(namespace(ns), existing)
	res, err := New(client, nil).Apply(context.Background(), owning("db1", render.KindSecret, existing), objs)
	require.NoError(t, err)
	assert.Equal(t, Result{Unchanged: 1}, counts(res))
	assert.Zero(t, res.Writes())
	assert.Equal(t, []string{"get namespaces /team-a", "get secrets team-a/sc-db1-secret"}, fakeactions.Of(client))
}

func TestApplyRepairsEditedDataEvenWhenAnnotationMatches(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	edited := withUID(objs.Secret.DeepCopy(), "uid-1")
	edited.Data["AZURE_REDIS_CONNECTIONSTRING"] = []byte("edited by hand")
	client := newClient(namespace(ns), edited)
	res, err := New(client, nil).Apply(context.Background(), owning("db1", render.KindSecret, edited), objs)
	require.NoError(t, err)
	assert.Equal(t, Result{Updated: 1}, counts(res))
	got, err := client.CoreV1().Secrets(ns).Get(context.Background(), "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, objs.Secret.Data, got.Data)
	assert.Equal(t, []string{FieldManager}, fieldManagers(client.Actions()))
}

func TestApplyRefusesSecretItDoesNotOwn(t *testing.T) {
	c, creds := secretConn(t, "db1")
	theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sc-db1-secret"}, Data: map[string][]byte{"mine": []byte("x")}}
	client := newClient(namespace(ns), theirs)
	_, err := New(client, nil).Apply(context.Background(), fresh("db1"), mustRender(t, c, creds))
	require.ErrorIs(t, err, ErrSecretIsOwned)
	assert.True(t, Permanent(err))
	var se *StepError
	require.True(t, errors.As(err, &se))
	assert.Equal(t, StepApplySecret, se.Step)
	assert.Equal(t, "Secret team-a/sc-db1-secret exists and is not managed by sc-extension", err.Error())
	assert.Equal(t, []string{"get namespaces /team-a", "get secrets team-a/sc-db1-secret"}, fakeactions.Of(client), "never written")
}

func TestApplyRefusesSecretOfAnotherConnection(t *testing.T) {
	c, creds := secretConn(t, "db1")
	other := mustRender(t, c, creds).Secret.DeepCopy()
	other.Labels[render.LabelConnection] = "db2"
	client := newClient(namespace(ns), other)
	_, err := New(client, nil).Apply(context.Background(), fresh("db1"), mustRender(t, c, creds))
	require.ErrorIs(t, err, ErrSecretIsOwned)
	assert.Equal(t, `Secret team-a/sc-db1-secret is labelled for another connection ("db2")`, err.Error())
}

func TestApplyRetriesConflictFromFreshRead(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	stale := withUID(objs.Secret.DeepCopy(), "uid-1")
	stale.Data["AZURE_REDIS_CONNECTIONSTRING"] = []byte("old")
	stale.Annotations[render.AnnotationDataHash] = render.DataHash(stale.Data)
	client := newClient(namespace(ns), stale)
	client.PrependReactor("update", "secrets", failOnce(conflictErr("secrets", "sc-db1-secret")))
	res, err := New(client, nil).Apply(context.Background(), owning("db1", render.KindSecret, stale), objs)
	require.NoError(t, err)
	assert.Equal(t, Result{Updated: 1}, counts(res))
	assert.Equal(t, []string{
		"get namespaces /team-a",
		"get secrets team-a/sc-db1-secret",
		"update secrets team-a/sc-db1-secret", // conflict
		"get secrets team-a/sc-db1-secret",    // re-read, never a resend of the stale copy
		"update secrets team-a/sc-db1-secret",
	}, fakeactions.Of(client))
}

func TestApplyCreateRaceBecomesUpdate(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	client := newClient(namespace(ns))
	// Another writer creates the Secret between our read and our create.
	client.PrependReactor("create", "secrets", failOnce(apierrors.NewAlreadyExists(schema.GroupResource{Resource: "secrets"}, "sc-db1-secret")))
	res, err := New(client, nil).Apply(context.Background(), fresh("db1"), objs)
	require.NoError(t, err)
	assert.Equal(t, Result{Created: 1}, counts(res))
	assert.Equal(t, []string{
		"get namespaces /team-a",
		"get secrets team-a/sc-db1-secret",
		"create secrets team-a/sc-db1-secret",
		"get secrets team-a/sc-db1-secret",
		"create secrets team-a/sc-db1-secret",
	}, fakeactions.Of(client))
}

func TestApplyNamespaceMissing(t *testing.T) {
	c, creds := secretConn(t, "db1")
	client := newClient()
	_, err := New(client, nil).Apply(context.Background(), fresh("db1"), mustRender(t, c, creds))
	require.ErrorIs(t, err, ErrNamespaceMissing)
	assert.True(t, Permanent(err))
	assert.Equal(t, []string{"get namespaces /team-a"}, fakeactions.Of(client))
}

func TestApplyTransientErrorIsNotPermanent(t *testing.T) {
	c, creds := secretConn(t, "db1")
	client := newClient(namespace(ns))
	client.PrependReactor("create", "secrets", failOnce(apierrors.NewServiceUnavailable("etcd leader changed")))
	_, err := New(client, nil).Apply(context.Background(), fresh("db1"), mustRender(t, c, creds))
	require.Error(t, err)
	assert.False(t, Permanent(err))
	assert.Contains(t, err.Error(), "write Secret team-a/sc-db1-secret")
	assert.NotContains(t, err.Error(), credValue(t))
}

func TestApplyWorkloadIdentitySharedServiceAccount(t *testing.T) {
	client := newClient(namespace(ns))
	a := New(client, nil)
	res, err := a.Apply(context.Background(), fresh("kv1"), mustRender(t, wiConn("kv1"), nil))
	require.NoError(t, err)
	assert.Equal(t, Result{Created: 2}, counts(res))
	client.ClearActions()

	// A second connection with the same client id reuses the account unchanged.
	res, err = a.Apply(context.Background(), fresh("kv2"), mustRender(t, wiConn("kv2"), nil))
	require.NoError(t, err)
	assert.Equal(t, Result{Created: 1, Unchanged: 1}, counts(res))
	assert.Equal(t, []Object{
		{Ref: ref(render.KindSecret, ns, "sc-kv2-secret"), Outcome: Created, UID: "created-secrets-3"},
		{Ref: ref(render.KindServiceAccount, ns, "sc-account-"+clientID), Outcome: Unchanged, UID: "created-serviceaccounts-2"},
	}, res.Objects, "one entry per object, in the order written, with the UID for kv2's record: "+
		"kv1 created the account earlier in this run, before any record said so")
	assert.Equal(t, []string{
		"get secrets team-a/sc-kv2-secret", // the namespace is known to exist this run
		"create secrets team-a/sc-kv2-secret",
		"get serviceaccounts team-a/sc-account-" + clientID,
	}, fakeactions.Of(client))
}

func TestApplyRefusesServiceAccountItDoesNotOwn(t *testing.T) {
	theirs := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: connection.ServiceAccountName(clientID)}}
	client := newClient(namespace(ns), theirs)
	_, err := New(client, nil).Apply(context.Background(), fresh("kv1"), mustRender(t, wiConn("kv1"), nil))
	require.ErrorIs(t, err, ErrServiceAccountIsOwned)
	var se *StepError
	require.True(t, errors.As(err, &se))
	assert.Equal(t, StepApplyServiceAccount, se.Step)
	sa, err := client.CoreV1().ServiceAccounts(ns).Get(context.Background(), theirs.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, sa.Annotations, "untouched")
}

func TestApplySecretProviderClass(t *testing.T) {
	client := newClient(namespace(ns))
	dyn := newDynamic(crd())
	a := New(client, dyn)
	res, err := a.Apply(context.Background(), fresh("kvcsi"), mustRender(t, csiConn("kvcsi"), nil))
	require.NoError(t, err)
	assert.Equal(t, Result{Created: 1}, counts(res))
	assert.Equal(t, []string{
		"get customresourcedefinitions /" + render.SPCCRDName,
		"get secretproviderclasses team-a/sc-kvcsi-secretproviderclass",
		"create secretproviderclasses team-a/sc-kvcsi-secretproviderclass",
	}, fakeactions.Of(dyn))

	dyn.ClearActions()
	res, err = a.Apply(context.Background(), fresh("kvcsi"), mustRender(t, csiConn("kvcsi"), nil))
	require.NoError(t, err)
	assert.Equal(t, Result{Unchanged: 1}, counts(res))
	assert.Equal(t, []string{"get secretproviderclasses team-a/sc-kvcsi-secretproviderclass"}, fakeactions.Of(dyn),
		"the CRD lookup is remembered for the run")
}

func TestApplyCSIDriverMissing(t *testing.T) {
	client := newClient(namespace(ns))
	dyn := newDynamic()
	_, err := New(client, dyn).Apply(context.Background(), fresh("kvcsi"), mustRender(t, csiConn("kvcsi"), nil))
	require.ErrorIs(t, err, ErrCSIDriverMissing)
	assert.True(t, Permanent(err))
	assert.Equal(t, "the Secret Store CSI driver is not installed: CRD secretproviderclasses.secrets-store.csi.x-k8s.io not found", err.Error())
	assert.Equal(t, []string{"get customresourcedefinitions /" + render.SPCCRDName}, fakeactions.Of(dyn))
}
