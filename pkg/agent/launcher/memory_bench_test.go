package launcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"
	k8srecord "k8s.io/client-go/tools/record"

	"github.com/sc-extension/sc-extension/pkg/agent/drift"
	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/agent/query"
	"github.com/sc-extension/sc-extension/pkg/agent/statuswatch"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/kube/inspect"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// memoryRecords is the scale goal of issue 9.
const memoryRecords = 10_000

const benchNS = "sc-system"

// BenchmarkLeaderMemory loads memoryRecords realistic records into the
// informers and caches a leader builds (agent/lead.go: the records
// informer, recordcache, the launcher's, drift's and statuswatch's indexes
// and handlers, statuswatch's initial sweep drained) and the query cache
// every replica runs, and reports the heap they hold per connection after
// a GC: "records-B/conn" for the leader's records informer and its caches,
// "query-B/conn" for the query cache, "B/conn" for both. "untransformed"
// is the records informer without launcher.RecordForCache (whole
// ConfigMaps, data and managedFields and all, each version decoded by
// recordcache), "cut" is launcher.NewRecordsFactory's (metadata only, the
// summary attached). Run it
// with
//
//	go test -run '^$' -bench BenchmarkLeaderMemory -benchtime 1x ./pkg/agent/launcher/
//
// The figures are the machine's and the Go release's; nothing asserts them.
func BenchmarkLeaderMemory(b *testing.B) {
	layouts := []struct {
		name    string
		records func(*fake.Clientset) informers.SharedInformerFactory
	}{
		{"untransformed", func(c *fake.Clientset) informers.SharedInformerFactory {
			return informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(benchNS),
				informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = record.Selector }))
		}},
		{"cut", func(c *fake.Clientset) informers.SharedInformerFactory {
			return launcher.NewRecordsFactory(c, benchNS, 0)
		}},
	}
	for _, l := range layouts {
		b.Run(l.name, func(b *testing.B) {
			var leader, replica float64
			for b.Loop() {
				leader, replica = measureLeader(b, memoryRecords, l.records)
			}
			b.ReportMetric(leader, "records-B/conn")
			b.ReportMetric(replica, "query-B/conn")
			b.ReportMetric(leader+replica, "B/conn")
		})
	}
}

// measureLeader returns the heap bytes per record the leader's records
// informer and its caches hold, then those of the query cache.
func measureLeader(b *testing.B, n int, recordsFactory func(*fake.Clientset) informers.SharedInformerFactory) (float64, float64) {
	client := servingRecords(n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	base := heapAfterGC()
	records := recordsFactory(client)
	cms := records.Core().V1().ConfigMaps()
	published := &countingPublisher{done: make(chan struct{})}
	published.want.Store(int64(n))
	sw := leaderControllers(b, client, cms, published)
	records.Start(ctx.Done())
	defer records.Shutdown()
	swDone := make(chan error, 1)
	go func() { swDone <- sw.Run(ctx) }()
	// statuswatch publishes every record once on start; after that its
	// queue is empty, as on a leader in steady state.
	select {
	case <-published.done:
	case <-time.After(5 * time.Minute):
		b.Fatal("statuswatch did not publish every record")
	}
	leader := heapAfterGC()

	qc, err := query.NewCache(launcher.NewRecordsFactory(client, benchNS, 0), zerolog.Nop())
	require.NoError(b, err)
	qDone := make(chan error, 1)
	go func() { qDone <- qc.Run(ctx) }()
	sctx, scancel := context.WithTimeout(ctx, 5*time.Minute)
	defer scancel()
	snap, err := qc.Snapshot(sctx)
	require.NoError(b, err)
	require.Equal(b, n, snap.Len())
	snap = nil
	replica := heapAfterGC()
	runtime.KeepAlive(records)
	runtime.KeepAlive(qc)

	cancel()
	require.NoError(b, <-swDone)
	require.NoError(b, <-qDone)
	return float64(leader-base) / float64(n), float64(replica-leader) / float64(n)
}

// leaderControllers registers the launcher, drift and statuswatch on
// records as agent/lead.go's components does, sharing one recordcache. Only
// statuswatch runs (its start-up sweep queues every record); what the
// others hold is their indexes and handlers.
func leaderControllers(b *testing.B, client *fake.Clientset, records coreinformers.ConfigMapInformer,
	pub statuswatch.Publisher) *statuswatch.Controller {
	b.Helper()
	idle := informers.NewSharedInformerFactory(client, 0) // never started: no Job, no namespaces
	log := zerolog.Nop()
	versions, err := recordcache.New(records.Informer(), log)
	require.NoError(b, err)
	st := store.New(client, benchNS)
	recorder := k8srecord.NewFakeRecorder(1)
	_, err = launcher.New(launcher.Deps{Client: client, Records: records, Versions: versions, Jobs: idle.Batch().V1().Jobs(),
		Namespaces: idle.Core().V1().Namespaces(), Waker: st, Recorder: recorder, Metrics: health.NewMetrics(), Log: log},
		launcher.Config{Namespace: benchNS, Image: "sc-job:bench", ServiceAccount: "sc-job"})
	require.NoError(b, err)
	meta := metadatafake.NewSimpleMetadataClient(metadatafake.NewTestScheme())
	policy := namespaces.Policy{Release: benchNS}
	_, err = drift.New(drift.Deps{Namespace: benchNS, Records: records, Versions: versions,
		Informers: drift.NewInformers(meta, policy, 0), Client: client, Policy: policy,
		DriftOf: inspect.DriftOf, NotOurs: inspect.NotOurs, Store: st, Recorder: recorder, Metrics: health.NewMetrics(), Log: log})
	require.NoError(b, err)
	sw, err := statuswatch.New(statuswatch.Deps{Cluster: "bench", Namespace: benchNS, Client: client, Records: records,
		Versions: versions, Publisher: pub, Metrics: health.NewMetrics(), Log: log})
	require.NoError(b, err)
	return sw
}

// countingPublisher closes done once want events were published.
type countingPublisher struct {
	want, n atomic.Int64
	done    chan struct{}
}

func (p *countingPublisher) Publish(context.Context, protocol.StatusEvent) error {
	if p.n.Add(1) == p.want.Load() {
		close(p.done)
	}
	return nil
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// servingRecords is a client whose API server holds n records and never
// changes them. Each list decodes them afresh from JSON, as a reflector
// decodes a list response: no object shares memory with another or with
// the test, so the heap the informers hold is theirs alone.
func servingRecords(n int) *fake.Clientset {
	client := fake.NewClientset()
	var wire [][]byte
	for i := range n {
		raw, err := json.Marshal(realisticRecord(i))
		if err != nil {
			panic(err)
		}
		wire = append(wire, raw)
	}
	client.PrependReactor("list", "configmaps", func(k8stesting.Action) (bool, kruntime.Object, error) {
		list := &corev1.ConfigMapList{ListMeta: metav1.ListMeta{ResourceVersion: fmt.Sprint(n + 100)}}
		list.Items = make([]corev1.ConfigMap, n)
		for i, raw := range wire {
			if err := json.Unmarshal(raw, &list.Items[i]); err != nil {
				return true, nil, err
			}
		}
		return true, list, nil
	})
	client.PrependWatchReactor("configmaps", func(k8stesting.Action) (bool, watch.Interface, error) {
		return true, watch.NewFake(), nil
	})
	return client
}

// realisticRecord is the record of a Succeeded storage-blob connection
// with workload identity, its configurations derived by the catalog, as
// pkg/kube/store and sc-job leave it: two objects rendered and owned, two
// requests remembered, and the managedFields the API server writes for
// connection.FieldManager's updates.
func realisticRecord(i int) *corev1.ConfigMap {
	const target, auth = catalog.TargetType("storage-blob"), catalog.AuthType("workloadIdentity")
	scope := fmt.Sprintf("team-%02d", i%50)
	clientID := fmt.Sprintf("%08x-1111-2222-3333-%012x", i, i)
	resourceID := fmt.Sprintf("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-apps/providers/Microsoft.Storage/storageAccounts/acct%05d", i)
	derived, err := catalog.Derive(target, auth, catalog.ClientTypes(target, auth)[0], resourceID, clientID)
	if err != nil {
		panic(err)
	}
	spec := connection.Spec{Name: fmt.Sprintf("blob_conn_%05d", i), Scope: scope,
		TargetService: connection.TargetService{Type: target, ID: resourceID},
		AuthInfo:      connection.AuthInfo{AuthType: auth, ClientID: clientID},
		ClientType:    catalog.ClientTypes(target, auth)[0]}
	for _, k := range sortedKeys(derived) {
		spec.Configurations = append(spec.Configurations, connection.Configuration{Name: k, Value: derived[k]})
	}
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	req := func(n int) string { return fmt.Sprintf("%08x-aaaa-bbbb-cccc-%012x", i, n) }
	c := connection.Connection{Spec: spec, Generation: 2, CredentialsVersion: req(1),
		Status: connection.Status{Phase: connection.PhaseSucceeded, Reason: "Rendered", Message: "rendered 2 objects",
			ObservedGeneration: 2, LastRequestID: req(2), UpdatedAt: at, Seq: 6, Incarnation: fmt.Sprintf("01JC%022d", i)},
		RecentRequestIDs: []string{req(1), req(2)}}
	for _, ref := range []connection.ResourceRef{
		{Kind: "Secret", Namespace: scope, Name: connection.SecretName(spec.ID())},
		{Kind: "ServiceAccount", Namespace: scope, Name: connection.ServiceAccountName(clientID)},
	} {
		c.Status.Resources = append(c.Status.Resources, ref)
		c.Status.Owned = append(c.Status.Owned, connection.OwnedObject{ResourceRef: ref, UID: fmt.Sprintf("%08x-4444-5555-6666-%012x", i, len(c.Status.Owned))})
	}
	cm, err := record.New(benchNS, c)
	if err != nil {
		panic(err)
	}
	cm.UID = types.UID(fmt.Sprintf("%08x-7777-8888-9999-%012x", i, i))
	cm.ResourceVersion = fmt.Sprint(100 + i)
	cm.CreationTimestamp = metav1.NewTime(at.Add(-time.Minute))
	cm.ManagedFields = []metav1.ManagedFieldsEntry{managedFields(cm, metav1.NewTime(at))}
	return cm
}

// managedFields is the entry the API server keeps for our updates of cm:
// one per manager and operation (a create counts as an update), listing
// every data key, label, annotation and finalizer written.
func managedFields(cm *corev1.ConfigMap, at metav1.Time) metav1.ManagedFieldsEntry {
	set := func(prefix string, keys []string) map[string]any {
		m := map[string]any{".": map[string]any{}}
		for _, k := range keys {
			m[prefix+k] = map[string]any{}
		}
		return m
	}
	var finalizers []string
	for _, f := range cm.Finalizers {
		finalizers = append(finalizers, fmt.Sprintf("%q", f))
	}
	fields := map[string]any{
		"f:data": set("f:", sortedKeys(cm.Data)),
		"f:metadata": map[string]any{
			"f:annotations": set("f:", sortedKeys(cm.Annotations)),
			"f:finalizers":  set("v:", finalizers),
			"f:labels":      set("f:", sortedKeys(cm.Labels)),
		},
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	return metav1.ManagedFieldsEntry{Manager: connection.FieldManager, Operation: metav1.ManagedFieldsOperationUpdate,
		APIVersion: "v1", Time: &at, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: raw}}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
