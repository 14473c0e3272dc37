package apply

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// The ServiceAccount goes through the shared write path: drift is repaired
// with one update carrying the field manager, and a tenant id no longer
// rendered is dropped while others' annotations stay.
func TestApplyRepairsServiceAccountAndDropsStaleTenant(t *testing.T) {
	want := mustRender(t, wiConn("kv1"), nil).ServiceAccount
	live := withUID(render.ServiceAccount(ns, clientID, "11111111-1111-4111-8111-111111111111"), "uid-sa")
	live.Annotations["example.com/theirs"] = "kept"
	client := newClient(namespace(ns), live)
	client.ClearActions()

	res, err := New(client, nil).Apply(context.Background(), owning("kv1", render.KindServiceAccount, live), render.Objects{ServiceAccount: want})
	require.NoError(t, err)
	assert.Equal(t, Result{Updated: 1}, counts(res))
	assert.Equal(t, []string{
		"get namespaces /team-a",
		"get serviceaccounts team-a/" + want.Name,
		"update serviceaccounts team-a/" + want.Name,
	}, fakeactions.Of(client))
	assert.Equal(t, []string{FieldManager}, fieldManagers(client.Actions()))
	got, err := client.CoreV1().ServiceAccounts(ns).Get(context.Background(), want.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotContains(t, got.Annotations, render.AnnotationWITenantID)
	assert.Equal(t, "kept", got.Annotations["example.com/theirs"])
	assert.Equal(t, want.Annotations[render.AnnotationDataHash], got.Annotations[render.AnnotationDataHash])
}

// User annotations on a keyvaultCsi connection reach its SecretProviderClass
// like its labels do, even though the spec hash is unchanged.
func TestApplySecretProviderClassMetadataChangeIsWritten(t *testing.T) {
	client := newClient(namespace(ns))
	dyn := newDynamic(crd())
	a := New(client, dyn)
	_, err := a.Apply(context.Background(), fresh("kvcsi"), mustRender(t, csiConn("kvcsi"), nil))
	require.NoError(t, err)
	dyn.ClearActions()

	c := csiConn("kvcsi")
	c.Spec.Annotations = map[string]string{"team": "payments"}
	res, err := a.Apply(context.Background(), fresh("kvcsi"), mustRender(t, c, nil))
	require.NoError(t, err)
	assert.Equal(t, Result{Updated: 1}, counts(res))
	assert.Equal(t, []string{
		"get secretproviderclasses team-a/sc-kvcsi-secretproviderclass",
		"update secretproviderclasses team-a/sc-kvcsi-secretproviderclass",
	}, fakeactions.Of(dyn))
}

// The dynamic fake does not record write options, so the field manager on
// SecretProviderClass writes is checked at the client the shared path uses.
func TestSecretProviderClassWritesCarryFieldManager(t *testing.T) {
	dyn := newDynamic(crd())
	rec := &recordingClient{ResourceInterface: dyn.Resource(SPCResource).Namespace(ns)}
	want := mustRender(t, csiConn("kvcsi"), nil).SecretProviderClass
	a := New(nil, dyn)
	o, _, err := write(context.Background(), a, spcKind, spcClient{ri: rec}, fresh("kvcsi"), want)
	require.NoError(t, err)
	assert.Equal(t, Created, o)

	c := csiConn("kvcsi")
	c.Spec.SecretStore.Objects = []string{"b"}
	o, _, err = write(context.Background(), a, spcKind, spcClient{ri: rec}, fresh("kvcsi"), mustRender(t, c, nil).SecretProviderClass)
	require.NoError(t, err)
	assert.Equal(t, Updated, o)
	assert.Equal(t, []string{"create " + FieldManager, "update " + FieldManager}, rec.writes)
}

type recordingClient struct {
	dynamic.ResourceInterface
	writes []string
}

func (r *recordingClient) Create(ctx context.Context, u *unstructured.Unstructured, opts metav1.CreateOptions, sub ...string) (*unstructured.Unstructured, error) {
	r.writes = append(r.writes, "create "+opts.FieldManager)
	return r.ResourceInterface.Create(ctx, u, opts, sub...)
}

func (r *recordingClient) Update(ctx context.Context, u *unstructured.Unstructured, opts metav1.UpdateOptions, sub ...string) (*unstructured.Unstructured, error) {
	r.writes = append(r.writes, "update "+opts.FieldManager)
	return r.ResourceInterface.Update(ctx, u, opts, sub...)
}

func TestApplyRefusesSecretProviderClassOfAnotherConnection(t *testing.T) {
	theirs := mustRender(t, csiConn("kvcsi"), nil).SecretProviderClass
	labels := theirs.GetLabels()
	labels[render.LabelConnection] = "other"
	theirs.SetLabels(labels)
	client := newClient(namespace(ns))
	dyn := newDynamic(crd(), theirs)
	_, err := New(client, dyn).Apply(context.Background(), fresh("kvcsi"), mustRender(t, csiConn("kvcsi"), nil))
	require.ErrorIs(t, err, ErrSecretProviderClassIsOwned)
	assert.Empty(t, fakeactions.Writes(dyn.Actions()), "never written")
}
