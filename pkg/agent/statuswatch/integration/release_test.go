//go:build integration

// Package statuswatch_integration proves statuswatch's release of a removed
// record against a real API server: the merge patch of metadata.finalizers
// keeps every data key (the leader caches none), and its resourceVersion
// precondition leaves a record changed since the decision as it is.
package statuswatch_integration

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/agent/statuswatch"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

const hold = "example.com/hold"

type env struct {
	t      *testing.T
	ctx    context.Context
	client kubernetes.Interface
	ns     string
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &env{t: t, ctx: ctx, client: kubetest.New(t, kubetest.QPS(100, 200)).Clientset, ns: kubetest.Namespace(t, kubetest.Prefix("sc-system-"))}
}

// create stores the record of connection name, held also by hold (so a
// released record stays to be looked at), and lets it go at cleanup.
func (e *env) create(name string) (*corev1.ConfigMap, connection.Connection) {
	e.t.Helper()
	c := connection.Connection{Spec: connection.Spec{Name: name, Scope: "default"}, Generation: 2,
		Deletion: &connection.Deletion{RequestID: "req-del"},
		Status: connection.Status{Phase: connection.PhaseSucceeded, Reason: "Rendered", Message: "rendered 0 objects",
			LastRequestID: "req-1", Seq: 3, Incarnation: "inc-" + name},
		RecentRequestIDs: []string{"req-1"}}
	cm, err := record.New(e.ns, c)
	require.NoError(e.t, err)
	cm.Finalizers = append(cm.Finalizers, hold)
	_, err = e.client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, metav1.CreateOptions{FieldManager: connection.FieldManager})
	require.NoError(e.t, err)
	e.t.Cleanup(func() {
		patch := []byte(`{"metadata":{"finalizers":null}}`)
		_, _ = e.client.CoreV1().ConfigMaps(e.ns).Patch(context.Background(), cm.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	})
	return cm, c
}

func (e *env) get(name string) *corev1.ConfigMap {
	e.t.Helper()
	got, err := e.client.CoreV1().ConfigMaps(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	require.NoError(e.t, err)
	return got
}

// records starts the leader's records informer (launcher.NewRecordsFactory).
func (e *env) records() cache.SharedIndexInformer {
	e.t.Helper()
	factory := launcher.NewRecordsFactory(e.client, e.ns, 0)
	inf := factory.Core().V1().ConfigMaps().Informer()
	ctx, cancel := context.WithCancel(e.ctx)
	factory.Start(ctx.Done())
	e.t.Cleanup(func() { cancel(); factory.Shutdown() })
	require.True(e.t, cache.WaitForCacheSync(ctx.Done(), inf.HasSynced))
	return inf
}

// cachedTerminating waits until inf holds name terminating.
func cachedTerminating(t *testing.T, inf cache.SharedIndexInformer, ns, name string) *corev1.ConfigMap {
	t.Helper()
	var cm *corev1.ConfigMap
	require.Eventually(t, func() bool {
		obj, ok, err := inf.GetStore().GetByKey(ns + "/" + name)
		if err != nil || !ok {
			return false
		}
		cm = obj.(*corev1.ConfigMap)
		return record.Terminating(cm)
	}, 30*time.Second, 20*time.Millisecond, "the informer sees %s terminating", name)
	return cm
}

// The cached record holds no data; releasing it removes our finalizer and
// nothing else: the data, the other finalizer and the API server's
// managedFields stay.
func TestReleaseOfACachedRecordKeepsItsData(t *testing.T) {
	e := setup(t)
	cm, _ := e.create("keep-data")
	inf := e.records()
	require.NoError(t, e.client.CoreV1().ConfigMaps(e.ns).Delete(e.ctx, cm.Name, metav1.DeleteOptions{}))
	cached := cachedTerminating(t, inf, e.ns, cm.Name)
	require.Nil(t, cached.Data, "the leader caches no record data")

	require.NoError(t, statuswatch.Release(e.ctx, e.client, cached))

	got := e.get(cm.Name)
	assert.Equal(t, []string{hold}, got.Finalizers)
	assert.Equal(t, cm.Data, got.Data, "every data key kept")
	require.NotEmpty(t, got.ManagedFields)
	_, err := record.Decode(got)
	require.NoError(t, err)
}

// A record changed between the decision and the release (its data
// rewritten here; any write moves the resourceVersion) is not released
// by the stale decision: Conflict, our finalizer and the change stay. The
// decision taken again on the newer version releases it.
func TestReleaseOfAChangedRecordConflicts(t *testing.T) {
	e := setup(t)
	cm, c := e.create("changed")
	require.NoError(t, e.client.CoreV1().ConfigMaps(e.ns).Delete(e.ctx, cm.Name, metav1.DeleteOptions{}))
	decided := e.get(cm.Name)
	require.True(t, record.Terminating(decided))

	changed := decided.DeepCopy()
	c.Status.Message = "changed meanwhile"
	require.NoError(t, record.Encode(changed, c))
	changed, err := e.client.CoreV1().ConfigMaps(e.ns).Update(e.ctx, changed, metav1.UpdateOptions{FieldManager: connection.FieldManager})
	require.NoError(t, err)

	err = statuswatch.Release(e.ctx, e.client, decided)
	require.True(t, apierrors.IsConflict(err), "%v", err)
	got := e.get(cm.Name)
	assert.Equal(t, []string{record.Finalizer, hold}, got.Finalizers, "not released")
	assert.Equal(t, changed.Data, got.Data, "the change kept")

	require.NoError(t, statuswatch.Release(e.ctx, e.client, got))
	got = e.get(cm.Name)
	assert.Equal(t, []string{hold}, got.Finalizers)
	assert.Equal(t, changed.Data, got.Data)
}

// The leader's statuswatch on the cached records (no data) publishes a
// removed record's Deleted from its summary and releases it: the record,
// its last finalizer ours, is gone.
func TestRemovedRecordIsReportedAndReleased(t *testing.T) {
	e := setup(t)
	const cluster = "c1"
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{cluster}})
	_, js := devservertest.Agent(t, srv, cluster, zerolog.Nop())
	_, admin := devservertest.AdminConn(t, srv)
	cons, err := admin.OrderedConsumer(e.ctx, protocol.StatusStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{protocol.StatusSubjectAll(cluster)}, DeliverPolicy: jetstream.DeliverAllPolicy})
	require.NoError(t, err)

	cm, _ := e.create("removed")
	// Only our finalizer: the release ends the record.
	cur := e.get(cm.Name)
	cur.Finalizers = []string{record.Finalizer}
	_, err = e.client.CoreV1().ConfigMaps(e.ns).Update(e.ctx, cur, metav1.UpdateOptions{})
	require.NoError(t, err)

	factory := launcher.NewRecordsFactory(e.client, e.ns, 0)
	records := factory.Core().V1().ConfigMaps()
	versions, err := recordcache.New(records.Informer(), zerolog.Nop())
	require.NoError(t, err)
	sw, err := statuswatch.New(statuswatch.Deps{Cluster: cluster, Namespace: e.ns, Client: e.client, Records: records,
		Versions: versions, Publisher: statuspub.New(js, cluster), Metrics: health.NewMetrics(), Log: zerolog.Nop()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(e.ctx)
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- sw.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done); factory.Shutdown() })

	first := next(t, cons)
	assert.Equal(t, connection.PhaseSucceeded, first.Phase, "the start-up sweep, from the summary")
	assert.Equal(t, "rendered 0 objects", first.Message)
	assert.EqualValues(t, 3, first.Seq)

	require.NoError(t, e.client.CoreV1().ConfigMaps(e.ns).Delete(e.ctx, cm.Name, metav1.DeleteOptions{}))
	ev := next(t, cons)
	assert.Equal(t, connection.PhaseDeleted, ev.Phase)
	assert.Equal(t, "req-del", ev.RequestID)
	assert.Equal(t, "removed", ev.Connection)
	assert.EqualValues(t, 4, ev.Seq)
	assert.Equal(t, "inc-removed", ev.Incarnation)
	require.Eventually(t, func() bool {
		_, err := e.client.CoreV1().ConfigMaps(e.ns).Get(e.ctx, cm.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 30*time.Second, 20*time.Millisecond, "released and gone")
}

func next(t *testing.T, cons jetstream.Consumer) protocol.StatusEvent {
	t.Helper()
	msg, err := cons.Next(jetstream.FetchMaxWait(30 * time.Second))
	require.NoError(t, err, "no status event published")
	var ev protocol.StatusEvent
	require.NoError(t, protocol.Decode(msg.Data(), protocol.KindStatus, &ev))
	return ev
}
