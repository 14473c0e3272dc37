//go:build integration

package store_integration

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// recordsCache is the leader's records informer, synced; stop freezes it,
// so that every record written afterwards is one it has not seen: a cache
// behind the API server, deterministically.
func recordsCache(t *testing.T, cs kubernetes.Interface, ns string) (absent func(string) bool, stop func()) {
	t.Helper()
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = record.Selector }))
	inf := f.Core().V1().ConfigMaps()
	absent = store.AbsentFromCache(inf.Lister().ConfigMaps(ns), inf.Informer().HasSynced)
	ctx, cancel := context.WithCancel(context.Background())
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		require.True(t, ok, "%v synced", typ)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			f.Shutdown()
		}
	}
	t.Cleanup(stop)
	return absent, stop
}

func withoutCredentials(ch connection.Change) connection.Change {
	ch.Spec.AuthInfo = connection.AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: "00000000-0000-4000-8000-0000000000ab"}
	ch.Spec.Configurations = []connection.Configuration{{Name: "AZURE_STORAGEBLOB_CLIENTID", Value: "00000000-0000-4000-8000-0000000000ab"}}
	ch.Credentials = nil
	return ch
}

// assertStored checks that c is what the API server holds and that its
// credential Secret pairs with it, holding want.
func assertStored(t *testing.T, s *store.Store, c connection.Connection, want string) {
	t.Helper()
	ctx := context.Background()
	got, err := s.Get(ctx, c.Spec.ID())
	require.NoError(t, err)
	// Apply answers a created record without the UID the API server gave it
	if c.RecordUID == "" {
		c.RecordUID = got.RecordUID
	}
	assert.Equal(t, c, got)
	creds, err := s.Credentials(ctx, got)
	require.NoError(t, err, "record and credential Secret pair")
	assert.Equal(t, want, creds["AZURE_STORAGEBLOB_CONNECTIONSTRING"])
}

// A write interrupted between its credential Secret and its record left
// the Secret alone: the cache rightly says "absent", the blind create
// meets the Secret, and the fallback overwrites it and commits the record.
func TestBlindCreateOverAnInterruptedWrite(t *testing.T) {
	cs := kubetest.New(t).Clientset
	ns := kubetest.Namespace(t)
	base := store.New(cs, ns)
	ctx := context.Background()
	// the interrupted write: r0's Secret, its record gone
	first, _, err := base.Apply(ctx, change("torn", "r0", "team-a", "cred-VALUE-r0"))
	require.NoError(t, err)
	cms := cs.CoreV1().ConfigMaps(ns)
	cm, err := cms.Get(ctx, connection.ConfigMapName(first.Spec.ID()), metav1.GetOptions{})
	require.NoError(t, err)
	cm.Finalizers = nil
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, cms.Delete(ctx, cm.Name, metav1.DeleteOptions{}))

	absent, _ := recordsCache(t, cs, ns)
	require.True(t, absent(first.Spec.ID()), "no record: the fast path is taken")
	c, applied, err := base.WithAbsence(absent).Apply(ctx, change("torn", "r1", "team-b", "cred-VALUE-r1"))
	require.NoError(t, err)
	assert.True(t, applied)
	assert.EqualValues(t, 1, c.Generation)
	assert.Equal(t, "r1", c.CredentialsVersion)
	assert.Equal(t, "team-b", c.Spec.Scope)
	assertStored(t, base, c, "cred-VALUE-r1")
}

// Records written after the cache stopped: it says "absent" for each. The
// blind creates fail with AlreadyExists and every change ends as if read
// first: stored once, credentials paired, a redelivery applied once, a
// removed record neither resurrected nor given a Secret.
func TestBlindCreateBehindAStaleCache(t *testing.T) {
	cs := kubetest.New(t).Clientset
	ns := kubetest.Namespace(t)
	release(t, ns)
	base := store.New(cs, ns)
	ctx := context.Background()
	absent, stop := recordsCache(t, cs, ns)
	stop()

	withCreds, _, err := base.Apply(ctx, change("with", "r1", "team-a", "cred-VALUE-with-1"))
	require.NoError(t, err)
	plain, _, err := base.Apply(ctx, withoutCredentials(change("plain", "r1", "team-a", "")))
	require.NoError(t, err)
	held, _, err := base.Apply(ctx, withoutCredentials(change("held", "r1", "team-a", "")))
	require.NoError(t, err)
	del := withoutCredentials(change("held", "r2", "team-a", ""))
	del.Delete = true
	_, _, err = base.Apply(ctx, del)
	require.NoError(t, err)
	require.NoError(t, base.Remove(ctx, held.Spec.ID()))
	for _, id := range []string{withCreds.Spec.ID(), plain.Spec.ID(), held.Spec.ID()} {
		require.True(t, absent(id), "the cache is behind for %s", id)
	}
	s := base.WithAbsence(absent)

	// a redelivery is still a duplicate
	c, applied, err := s.Apply(ctx, change("with", "r1", "team-a", "cred-VALUE-with-1"))
	require.NoError(t, err)
	assert.False(t, applied)
	assert.EqualValues(t, 1, c.Generation)

	// a change to a record with credentials: rotated once
	c, applied, err = s.Apply(ctx, change("with", "r2", "team-b", "cred-VALUE-with-2"))
	require.NoError(t, err)
	assert.True(t, applied)
	assert.EqualValues(t, 2, c.Generation)
	assertStored(t, base, c, "cred-VALUE-with-2")

	// a record without credentials gains them: the blind Secret is taken
	// back under the API server's preconditions and written again
	c, applied, err = s.Apply(ctx, change("plain", "r2", "team-b", "cred-VALUE-plain-2"))
	require.NoError(t, err)
	assert.True(t, applied)
	assert.EqualValues(t, 2, c.Generation)
	assert.Equal(t, plain.Status.Incarnation, c.Status.Incarnation, "the same record, not a new one")
	assertStored(t, base, c, "cred-VALUE-plain-2")

	// a removed record waits for its Deleted event: nothing written beside it
	rec, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, connection.ConfigMapName(held.Spec.ID()), metav1.GetOptions{})
	require.NoError(t, err)
	_, _, err = s.Apply(ctx, change("held", "r3", "team-a", "cred-VALUE-held-3"))
	require.ErrorIs(t, err, store.ErrTerminating)
	_, err = cs.CoreV1().Secrets(ns).Get(ctx, connection.CredentialSecretName(held.Spec.ID()), metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "no credential Secret beside a removed record: %v", err)
	again, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, rec.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, rec.ResourceVersion, again.ResourceVersion)
}
