package launcher

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	core "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

const (
	getDB1    = "get configmaps sc-system/sc-conn-db1"
	updateDB1 = "update configmaps sc-system/sc-conn-db1"
)

// parkedCM is connection id in scope team-a, parked on its namespace.
func parkedCM(t *testing.T, id string) *corev1.ConfigMap {
	return waitingCM(t, id, connection.PhasePending, connection.ReasonNamespaceNotFound, 1, epoch.Add(connection.ParkedDelay))
}

// processWake runs one namespace key through the wake queue.
func (f *fixture) processWake(name string) {
	f.t.Helper()
	f.c.wake.worker.Add(name)
	require.True(f.t, f.c.wake.worker.ProcessNextWorkItem(context.Background()))
}

// updated is the record the last update action wrote, decoded.
func (f *fixture) updated() (connection.Connection, core.UpdateActionImpl) {
	f.t.Helper()
	acts := f.client.Actions()
	for i := len(acts) - 1; i >= 0; i-- {
		if u, ok := acts[i].(core.UpdateActionImpl); ok && acts[i].GetResource().Resource == "configmaps" {
			return decode(f.t, u.GetObject().(*corev1.ConfigMap)), u
		}
	}
	f.t.Fatal("no record was updated")
	return connection.Connection{}, core.UpdateActionImpl{}
}

// A namespace that appears wakes exactly the connections parked on it, and
// the woken record is work: the launcher starts sc-job for it.
func TestNamespaceCreatedWakesParkedConnectionThenJob(t *testing.T) {
	other := records.Connection("elsewhere", connection.PhasePending, 1)
	other.Spec.Scope = "team-b"
	other.Status.Reason, other.Status.RetryAfter = connection.ReasonNamespaceNotFound, ptr.To(epoch.Add(connection.ParkedDelay))
	f := newFixture(t,
		parkedCM(t, "db1"),
		records.ConfigMap(t, other),
		waitingCM(t, "r1", connection.PhasePending, connection.ReasonRetrying, 1, epoch.Add(time.Minute)),
		namespaceObj("team-a", "uid-ns-1"),
	)
	f.processWake("team-a")

	require.Equal(t, []string{getDB1, updateDB1}, f.actions())
	woken, update := f.updated()
	assert.Equal(t, connection.FieldManager, update.UpdateOptions.FieldManager)
	assert.Equal(t, connection.PhasePending, woken.Status.Phase)
	assert.Equal(t, ReasonNamespaceCreated, woken.Status.Reason)
	assert.Nil(t, woken.Status.RetryAfter, "due now")
	assert.Equal(t, 1, woken.Status.Attempts, "a wake that does not help backs off further")
	assert.Equal(t, []string{"Normal NamespaceCreated Namespace team-a exists; woken to render again"}, f.events())
	assert.Equal(t, 0, f.c.wake.worker.Queue().NumRequeues("team-a"))

	// The informer delivers the woken record; the launcher acts on it.
	cm, err := f.client.CoreV1().ConfigMaps(ns).Get(context.Background(), "sc-conn-db1", metav1.GetOptions{})
	require.NoError(t, err)
	cm.ResourceVersion = "2" // the fake's tracker leaves it unchanged; an API server would not
	require.NoError(t, f.factory.Core().V1().ConfigMaps().Informer().GetIndexer().Update(cm))
	f.client.ClearActions()
	f.process()
	require.Equal(t, []string{createJob}, f.actions())
	job, _ := f.createdJob()
	assert.Equal(t, newWork([]workItem{item("db1", 1)}).digest, job.Annotations[AnnotationDigest])
}

func TestNoWakeWhileTheNamespaceIsMissingOrTerminating(t *testing.T) {
	terminating := namespaceObj("team-a", "uid-ns-1")
	terminating.DeletionTimestamp = ptr.To(metav1.NewTime(epoch))
	for name, objs := range map[string][]runtime.Object{
		"missing":     {parkedCM(t, "db1")},
		"terminating": {parkedCM(t, "db1"), terminating},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, objs...)
			f.processWake("team-a")
			assert.Empty(t, f.actions())
			assert.Empty(t, f.events())
			assert.Equal(t, 0, f.c.wake.worker.Queue().NumRequeues("team-a"))
		})
	}
}

// sc-job parking a connection again while the cache still shows the same
// namespace means the cache is behind: one wake per namespace UID, or the
// two would loop. A re-created namespace (new UID) wakes it again.
func TestOneWakePerNamespaceUID(t *testing.T) {
	f := newFixture(t, parkedCM(t, "db1"), namespaceObj("team-a", "uid-ns-1"))
	f.processWake("team-a")
	require.Equal(t, []string{getDB1, updateDB1}, f.actions())

	// The namespace changes again before the woken record reaches the
	// cache: nothing to do, and nothing to report.
	f.client.ClearActions()
	f.processWake("team-a")
	assert.Empty(t, f.actions())
	assert.NotContains(t, f.logs.String(), "parked again")

	// sc-job parks it again; the informer delivers that.
	f.client.ClearActions()
	reparked := parkedCM(t, "db1")
	reparked.ResourceVersion = "3"
	require.NoError(t, f.client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("configmaps"), reparked, ns))
	require.NoError(t, f.factory.Core().V1().ConfigMaps().Informer().GetIndexer().Update(reparked))
	f.processWake("team-a")
	assert.Empty(t, f.actions())
	assert.Contains(t, f.logs.String(), "parked again on a namespace it was woken for")

	require.NoError(t, f.factory.Core().V1().Namespaces().Informer().GetIndexer().Update(namespaceObj("team-a", "uid-ns-2")))
	f.processWake("team-a")
	assert.Equal(t, []string{getDB1, updateDB1}, f.actions())
}

func TestWakeErrorIsRetriedWithBackoff(t *testing.T) {
	f := newFixture(t, parkedCM(t, "db1"), namespaceObj("team-a", "uid-ns-1"))
	f.client.PrependReactor("update", "configmaps", func(core.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
	})
	f.processWake("team-a")
	assert.Equal(t, []string{getDB1, updateDB1}, f.actions())
	assert.Equal(t, 1, f.c.wake.worker.Queue().NumRequeues("team-a"))
	assert.Contains(t, f.logs.String(), "etcd unavailable")
	assert.Empty(t, f.events())
}

// What the informers deliver decides which namespaces are looked at.
func TestWakeEventHandlers(t *testing.T) {
	f := newFixture(t)
	w := f.c.wake
	terminating := namespaceObj("gone", "uid-ns-0")
	terminating.DeletionTimestamp = ptr.To(metav1.NewTime(epoch))

	w.namespaceChanged(terminating)
	assert.Equal(t, 0, w.worker.Queue().Len(), "a terminating namespace wakes nothing")
	w.recordChanged(recordCM(t, "plain", connection.PhasePending, 1))
	w.recordChanged(waitingCM(t, "r1", connection.PhasePending, connection.ReasonRetrying, 1, epoch))
	assert.Equal(t, 0, w.worker.Queue().Len(), "only parked connections look for their namespace")

	w.namespaceChanged(namespaceObj("team-b", "uid-ns-2"))
	w.recordChanged(parkedCM(t, "db1")) // scope team-a: parked after the namespace appeared
	require.Equal(t, 2, w.worker.Queue().Len())
	got := map[string]bool{}
	for range 2 {
		k, _ := w.worker.Queue().Get()
		got[k] = true
		w.worker.Queue().Done(k)
	}
	assert.Equal(t, map[string]bool{"team-a": true, "team-b": true}, got)
}

// The Namespace cache holds metadata only.
func TestNamespaceCacheKeepsOnlyMetadata(t *testing.T) {
	in := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a", UID: "u", ResourceVersion: "7",
			Labels: map[string]string{"owner": "x"}, Annotations: map[string]string{"note": "y"},
			DeletionTimestamp: ptr.To(metav1.NewTime(epoch))},
		Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating},
	}
	out, err := namespaceMetadata(in)
	require.NoError(t, err)
	assert.Equal(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", UID: "u", ResourceVersion: "7",
		DeletionTimestamp: ptr.To(metav1.NewTime(epoch))}}, out)
}
