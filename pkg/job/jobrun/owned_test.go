package jobrun

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeuid"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

func secretRef(id string) connection.ResourceRef {
	return connection.ResourceRef{Kind: render.KindSecret, Namespace: target, Name: connection.SecretName(id)}
}

func saRef() connection.ResourceRef {
	return connection.ResourceRef{Kind: render.KindServiceAccount, Namespace: target, Name: connection.ServiceAccountName(clientID)}
}

func (f *fixture) uid(ref connection.ResourceRef) string {
	f.t.Helper()
	var (
		m   metav1.Object
		err error
	)
	switch ref.Kind {
	case render.KindServiceAccount:
		m, err = f.client.CoreV1().ServiceAccounts(ref.Namespace).Get(context.Background(), ref.Name, metav1.GetOptions{})
	default:
		m, err = f.client.CoreV1().Secrets(ref.Namespace).Get(context.Background(), ref.Name, metav1.GetOptions{})
	}
	require.NoError(f.t, err)
	return string(m.GetUID())
}

// The UIDs ride on the status write the run makes anyway (the exact
// actions of TestRunRendersNewConnection are unchanged).
func TestRunRecordsTheUIDsOfWhatItCreated(t *testing.T) {
	f := newFixture(t)
	f.apply(f.wiChange("kv1"))
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	c := f.get("kv1")
	assert.Equal(t, []connection.OwnedObject{
		{ResourceRef: secretRef("kv1"), UID: f.uid(secretRef("kv1"))},
		{ResourceRef: saRef(), UID: f.uid(saRef())},
	}, c.Status.Owned)
	assert.NotEmpty(t, c.Status.Owned[0].UID)
}

// A tenant pre-creates sc-db1-secret with our labels: the connection fails
// with SecretIsOwned, and deleting it with deleteResources keeps the Secret.
func TestRunSpoofedSecretFailsAndIsNeverDeleted(t *testing.T) {
	spoof := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: "sc-db1-secret", UID: "tenant-uid",
		Labels: map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: "db1"}}}
	f := newFixture(t, spoof)
	ch := f.secretChange("db1")
	f.apply(ch)
	_, err := f.runner().Run(context.Background())
	require.ErrorIs(t, err, ErrFailed)
	c := f.get("db1")
	assert.Equal(t, connection.PhaseFailed, c.Status.Phase)
	assert.Equal(t, ReasonSecretIsOwned, c.Status.Reason)
	assert.Contains(t, c.Status.Message, "carries sc-extension's labels but was not created by sc-extension")
	assert.Empty(t, c.Status.Owned)

	f.apply(connection.Change{RequestID: f.requestID(), Spec: ch.Spec, Delete: true, DeleteResources: true})
	sum, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Deleted)
	assert.Equal(t, "tenant-uid", f.uid(secretRef("db1")), "the tenant's Secret survives --delete-resources")
}

func TestRunSpoofedServiceAccountFails(t *testing.T) {
	spoof := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: saRef().Name, UID: "tenant-uid",
		Labels: map[string]string{connection.LabelManagedBy: connection.ManagedByValue}}}
	f := newFixture(t, spoof)
	f.apply(f.wiChange("kv1"))
	_, err := f.runner().Run(context.Background())
	require.ErrorIs(t, err, ErrFailed)
	c := f.get("kv1")
	assert.Equal(t, ReasonServiceAccountIsOwned, c.Status.Reason)
	// The Secret created before the refusal is recorded by the failure's
	// status write: once the tenant removes their account, the next run
	// finds the Secret its own.
	assert.Equal(t, []connection.OwnedObject{{ResourceRef: secretRef("kv1"), UID: f.uid(secretRef("kv1"))}}, c.Status.Owned)

	require.NoError(t, f.client.CoreV1().ServiceAccounts(target).Delete(context.Background(), spoof.Name, metav1.DeleteOptions{}))
	require.NoError(t, f.store.MarkPending(context.Background(), "kv1", "Test", "the account is gone"))
	_, err = f.runner().Run(context.Background())
	require.NoError(t, err)
	c = f.get("kv1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase)
	assert.Equal(t, []connection.OwnedObject{
		{ResourceRef: secretRef("kv1"), UID: f.uid(secretRef("kv1"))},
		{ResourceRef: saRef(), UID: f.uid(saRef())},
	}, c.Status.Owned)
}

// A newer request overtakes the run: its status is not written, but the
// UID of the Secret it created is, so a later run (another Applier with no
// memory of this one) still finds the Secret its own.
func TestRunOvertakenStillRecordsWhatItCreated(t *testing.T) {
	f := newFixture(t)
	ch := f.secretChange("db1")
	f.apply(ch)
	newer := ch
	newer.RequestID = f.requestID()
	newer.Spec.Labels = map[string]string{"v": "2"}
	// The newer request arrives after the run's MaxRun: it is left to
	// the next run.
	clk := clocktesting.NewFakeClock(time.Now())
	var r *Runner
	st := &credsHookStore{Store: f.store, hook: once(func() {
		f.watched()
		clk.Step(time.Minute)
		f.apply(newer)
		f.deferred(r, "db1")
	})}
	r = f.runner(func(c *Config) { c.Store = st; c.Clock = clk; c.MaxRun = time.Minute; c.Linger = time.Hour })
	sum, err := r.Run(context.Background())
	require.NoError(t, err, "work left to the next run does not fail this one")
	assert.Equal(t, 1, sum.Deferred)
	assert.Contains(t, f.out.String(), "; 1 left to the next run (max run reached)")
	c := f.get("db1")
	assert.Equal(t, connection.PhasePending, c.Status.Phase, "generation 2 still waits")
	assert.Equal(t, []connection.OwnedObject{{ResourceRef: secretRef("db1"), UID: f.uid(secretRef("db1"))}}, c.Status.Owned)

	_, err = f.runner().Run(context.Background())
	require.NoError(t, err, f.out.String())
	c = f.get("db1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase)
	assert.Equal(t, int64(2), c.Status.ObservedGeneration)
}

// Connections sharing a ServiceAccount, rendered in different runs: the
// second finds the account through the first's record and records it too,
// so the account stays provably ours when the first is deleted.
func TestRunSharedServiceAccountAcrossRuns(t *testing.T) {
	f := newFixture(t)
	f.apply(f.wiChange("kv1"))
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	sa := f.uid(saRef())

	kv2 := f.wiChange("kv2")
	f.apply(kv2)
	_, err = f.runner().Run(context.Background())
	require.NoError(t, err)
	owned, ok := f.get("kv2").Status.OwnedUID(saRef())
	require.True(t, ok)
	assert.Equal(t, sa, owned)

	// kv1 goes, keeping its objects: kv2's record alone now vouches for
	// the account, and kv2's delete with resources removes it.
	f.apply(connection.Change{RequestID: f.requestID(), Spec: f.wiChange("kv1").Spec, Delete: true})
	_, err = f.runner().Run(context.Background())
	require.NoError(t, err)
	f.apply(connection.Change{RequestID: f.requestID(), Spec: kv2.Spec, Delete: true, DeleteResources: true})
	f.client.ClearActions()
	_, err = f.runner().Run(context.Background())
	require.NoError(t, err)
	_, err = f.client.CoreV1().ServiceAccounts(target).Get(context.Background(), saRef().Name, metav1.GetOptions{})
	assert.True(t, err != nil, "deleted")
	for _, a := range f.client.Actions() {
		if d, ok := a.(interface{ GetDeleteOptions() metav1.DeleteOptions }); ok && a.GetResource().Resource == "serviceaccounts" {
			assert.Equal(t, types.UID(sa), *d.GetDeleteOptions().Preconditions.UID)
		}
	}
}

// Drift repair: our Secret was deleted; the run creates it again and the
// record holds the new UID in place of the old one.
func TestRunRecreatedObjectReplacesItsUID(t *testing.T) {
	f := newFixture(t)
	f.apply(f.secretChange("db1"))
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	old := f.uid(secretRef("db1"))
	require.NoError(t, f.client.CoreV1().Secrets(target).Delete(context.Background(), "sc-db1-secret", metav1.DeleteOptions{}))
	require.NoError(t, f.store.MarkPending(context.Background(), "db1", "Drift", "Secret deleted"))
	_, err = f.runner().Run(context.Background())
	require.NoError(t, err)
	now := f.uid(secretRef("db1"))
	assert.NotEqual(t, old, now)
	assert.Equal(t, []connection.OwnedObject{{ResourceRef: secretRef("db1"), UID: now}}, f.get("db1").Status.Owned)
}

// The upgrade: a record written by a release that recorded no UIDs lists
// the Secret it rendered; the install/upgrade run adopts it once and
// records its UID. A labelled object such a record does not list is not
// adopted.
func TestRunAdoptsWhatALegacyRecordListsOnce(t *testing.T) {
	f := newFixture(t)
	f.apply(f.secretChange("db1"))
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	uid := f.uid(secretRef("db1"))
	legacy := func(keepResources bool) {
		_, err := f.store.UpdateStatus(context.Background(), "db1", func(c *connection.Connection) error {
			c.Status.Owned = nil
			if !keepResources {
				c.Status.Resources = nil
			}
			return nil
		})
		require.NoError(t, err)
	}
	legacy(true)
	_, err = f.runner(func(c *Config) { c.RenderAll = true }).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []connection.OwnedObject{{ResourceRef: secretRef("db1"), UID: uid}}, f.get("db1").Status.Owned)

	legacy(false)
	// An older release stamped no creator token either (with it, the
	// object would be adopted as this record's orphan).
	sec, err := f.client.CoreV1().Secrets(target).Get(context.Background(), secretRef("db1").Name, metav1.GetOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, sec.Annotations[apply.AnnotationCreator])
	delete(sec.Annotations, apply.AnnotationCreator)
	_, err = f.client.CoreV1().Secrets(target).Update(context.Background(), sec, metav1.UpdateOptions{})
	require.NoError(t, err)
	_, err = f.runner(func(c *Config) { c.RenderAll = true }).Run(context.Background())
	require.ErrorIs(t, err, ErrFailed)
	assert.Equal(t, ReasonSecretIsOwned, f.get("db1").Status.Reason, "not listed by the record: not adopted")
}

// A failed run's objects are recorded though Status.Resources (written on
// success) never lists them; when the connection stops rendering one, it is
// removed like any stale object instead of lingering.
func TestRunRemovesWhatAFailedRunCreatedOnceNoLongerRendered(t *testing.T) {
	spoof := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: saRef().Name, UID: "tenant-uid"}}
	f := newFixture(t, spoof)
	ch := f.wiChange("kv1")
	f.apply(ch)
	_, err := f.runner().Run(context.Background())
	require.ErrorIs(t, err, ErrFailed)
	require.Len(t, f.get("kv1").Status.Owned, 1, "the Secret created before the refusal")

	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	crd.SetName(render.SPCCRDName)
	dyn := fakeuid.Assign(dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		apply.CRDResource: "CustomResourceDefinitionList", apply.SPCResource: "SecretProviderClassList",
	}, crd))
	csi := ch
	csi.RequestID = f.requestID()
	csi.Spec.AuthInfo.AuthType = catalog.AuthKeyvaultCSI
	csi.Spec.Configurations = nil
	csi.Spec.SecretStore = &connection.SecretStore{KeyVaultName: "kv", Objects: []string{"a"}}
	f.apply(csi)
	_, err = f.runner(func(c *Config) { c.Dynamic = dyn }).Run(context.Background())
	require.NoError(t, err)

	_, err = f.client.CoreV1().Secrets(target).Get(context.Background(), "sc-kv1-secret", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "removed: %v", err)
	c := f.get("kv1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase)
	require.Len(t, c.Status.Owned, 1)
	assert.Equal(t, render.KindSecretProviderClass, c.Status.Owned[0].Kind)
	assert.Equal(t, "tenant-uid", f.uid(saRef()), "the tenant's account was never ours")
}

// Connections sharing one ServiceAccount, rendered by parallel workers of
// one run: whichever creates it, the others find it theirs (the Applier
// serialises writes of a shared object and remembers what it created). The
// outcome is deterministic; catching a regression is not: without the
// serialisation this failed in 2 of 20 runs here (the real API server's
// TestRunDeletesSharedServiceAccountWithLastUser found it first).
func TestRunParallelWorkersShareTheServiceAccount(t *testing.T) {
	f := newFixture(t)
	for i := range 8 {
		f.apply(f.wiChange(fmt.Sprintf("kv%d", i)))
	}
	sum, err := f.runner(func(c *Config) { c.Workers = 8 }).Run(context.Background())
	require.NoError(t, err, f.out.String())
	assert.Equal(t, 8, sum.Rendered)
	sa := f.uid(saRef())
	for i := range 8 {
		uid, ok := f.get(fmt.Sprintf("kv%d", i)).Status.OwnedUID(saRef())
		assert.True(t, ok)
		assert.Equal(t, sa, uid)
	}
}

// A delete with --delete-resources that fails half-way forgets what it
// already deleted, from Owned and from Resources alike: listed without a
// UID, a labelled look-alike a tenant creates in its place would pass for
// an older release's object and be deleted on the retry.
func TestRunHalfDoneDeleteNeverAdoptsALookAlike(t *testing.T) {
	f := newFixture(t)
	ch := f.wiChange("kv1")
	f.apply(ch)
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)

	failed := false
	f.client.PrependReactor("delete", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failed {
			return false, nil, nil
		}
		failed = true
		return true, nil, apierrors.NewServiceUnavailable("etcdserver: leader changed")
	})
	f.apply(connection.Change{RequestID: f.requestID(), Spec: ch.Spec, Delete: true, DeleteResources: true})
	_, err = f.runner().Run(context.Background())
	require.NoError(t, err, "a transient failure does not fail the run")
	c := f.get("kv1")
	assert.Equal(t, ReasonRetrying, c.Status.Reason)
	assert.Equal(t, []connection.ResourceRef{saRef()}, c.Status.Resources)
	assert.Equal(t, []connection.ResourceRef{saRef()}, ownedRefs(c.Status))

	lookAlike := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: "sc-kv1-secret",
		Labels: map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: "kv1"}}}
	_, err = f.client.CoreV1().Secrets(target).Create(context.Background(), lookAlike, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, f.store.Wake(context.Background(), "kv1", "Test", "retry now"))
	sum, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Deleted)
	_, err = f.client.CoreV1().ServiceAccounts(target).Get(context.Background(), saRef().Name, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the account was ours: %v", err)
	_, err = f.client.CoreV1().Secrets(target).Get(context.Background(), "sc-kv1-secret", metav1.GetOptions{})
	assert.NoError(t, err, "the look-alike was not")
}
