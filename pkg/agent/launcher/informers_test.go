package launcher_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// terminatingRecord is a realistic record being removed: every metadata
// field a reader of the records informer looks at is set, and its
// connection's deletion was requested.
func terminatingRecord(t *testing.T, i int) *corev1.ConfigMap {
	cm := realisticRecord(i)
	c, err := record.Decode(cm)
	require.NoError(t, err)
	c.Deletion = &connection.Deletion{RequestID: "req-del"}
	require.NoError(t, record.Encode(cm, c))
	cm.DeletionTimestamp = &metav1.Time{Time: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}
	cm.DeletionGracePeriodSeconds = new(int64)
	cm.Finalizers = append(cm.Finalizers, "example.com/other")
	cm.Annotations["example.com/note"] = "kept"
	return cm
}

// The transform keeps the record's metadata less managedFields and drops
// its data; the summary attached to the cached object says all the
// leader's readers decide and publish from: the status event statuswatch
// publishes from it is the one the whole record gives. The object it was
// handed is not modified, and an object it returned is returned as it is.
func TestRecordForCacheKeepsWhatReadersUse(t *testing.T) {
	for _, in := range []*corev1.ConfigMap{realisticRecord(1), terminatingRecord(t, 2)} {
		sent := in.DeepCopy()
		require.NotEmpty(t, in.ManagedFields)

		obj, err := launcher.RecordForCache(in)
		require.NoError(t, err)
		out, ok := obj.(*corev1.ConfigMap)
		require.True(t, ok)

		assert.Equal(t, sent, in, "the reflector's object is not modified")
		want := sent.DeepCopy()
		want.ManagedFields, want.Annotations, want.Data = nil, nil, nil
		assert.Equal(t, want, out, "metadata as sent, less managedFields and annotations; no data")
		assert.True(t, record.IsRecord(out))
		assert.Equal(t, record.Terminating(sent), record.Terminating(out))
		assert.Equal(t, record.WithoutFinalizer(sent), record.WithoutFinalizer(out))

		full, err := record.Decode(sent)
		require.NoError(t, err)
		v, ok := recordcache.Attached(out)
		require.True(t, ok, "summary attached")
		require.NoError(t, v.Err)
		assert.Equal(t, sent.ResourceVersion, v.ResourceVersion)
		for name, ev := range map[string]func(string, connection.Connection) protocol.StatusEvent{
			"status": statuspub.FromConnection, "deleted": statuspub.Deleted} {
			got, want := ev("c1", v.Connection()), ev("c1", full)
			// The header is each event's own; Deleted is stamped now.
			got.Header, want.Header = protocol.Header{}, protocol.Header{}
			if name == "deleted" {
				got.Time, want.Time = time.Time{}, time.Time{}
			}
			assert.Equal(t, want, got, name)
		}
		assert.Equal(t, full.Status.Owned, v.Owned)

		again, err := launcher.RecordForCache(out)
		require.NoError(t, err)
		assert.Same(t, out, again, "idempotent")
	}
}

// A record that does not decode is cached without its data too; its
// summary says why, so readers skip it (and statuswatch releases it by id).
func TestRecordForCacheSummarisesAnUndecodableRecord(t *testing.T) {
	in := realisticRecord(4)
	in.Data[record.KeyStatus] = "{"
	obj, err := launcher.RecordForCache(in)
	require.NoError(t, err)
	out := obj.(*corev1.ConfigMap)
	assert.Nil(t, out.Data)
	v, ok := recordcache.Attached(out)
	require.True(t, ok)
	assert.ErrorIs(t, v.Err, record.ErrCorrupt)
	assert.Equal(t, "blob_conn_00004", v.Name, "the annotation's name, to report it by")
}

// What every record repeats is held once: two records decoded separately
// share their namespace and keys after the transform.
func TestRecordForCacheSharesRepeatedStrings(t *testing.T) {
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	in1, in2 := fromWire(t, realisticRecord(1)), fromWire(t, realisticRecord(2))
	require.False(t, same(in1.Namespace, in2.Namespace), "decoded apart, as the reflector decodes them")
	a, err := launcher.RecordForCache(in1)
	require.NoError(t, err)
	b, err := launcher.RecordForCache(in2)
	require.NoError(t, err)
	ca, cb := a.(*corev1.ConfigMap), b.(*corev1.ConfigMap)
	assert.True(t, same(ca.Namespace, cb.Namespace))
	assert.True(t, same(ca.Finalizers[0], cb.Finalizers[0]))
	assert.True(t, same(ca.Labels[connection.LabelManagedBy], cb.Labels[connection.LabelManagedBy]))
	for k := range ca.Labels {
		for k2 := range cb.Labels {
			if k == k2 {
				assert.True(t, same(k, k2), "label %s", k)
			}
		}
	}
	va, _ := recordcache.Attached(ca)
	vb, _ := recordcache.Attached(cb)
	assert.True(t, same(va.Message, vb.Message), "the summary interns what repeats")
}

// fromWire is cm encoded and decoded again: its strings are its own.
func fromWire(t *testing.T, cm *corev1.ConfigMap) *corev1.ConfigMap {
	t.Helper()
	raw, err := json.Marshal(cm)
	require.NoError(t, err)
	out := &corev1.ConfigMap{}
	require.NoError(t, json.Unmarshal(raw, out))
	return out
}

// A tombstone is passed through as it is.
func TestRecordForCacheLeavesTombstones(t *testing.T) {
	tomb := cache.DeletedFinalStateUnknown{Key: "sc-system/x", Obj: realisticRecord(1)}
	got, err := launcher.RecordForCache(tomb)
	require.NoError(t, err)
	assert.Equal(t, tomb, got)
}

// The records factory's informer caches records through the transform:
// without managedFields and data, the summary attached.
func TestRecordsFactoryCachesWithoutManagedFieldsAndData(t *testing.T) {
	cm := realisticRecord(3)
	cm.Namespace = records.Namespace
	client := fake.NewClientset(cm)
	factory := launcher.NewRecordsFactory(client, records.Namespace, 0)
	inf := factory.Core().V1().ConfigMaps()
	inf.Informer() // registered before the start
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	records.Start(t, client, 1, ctx.Done(), factory)
	require.True(t, cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced))

	got, err := inf.Lister().ConfigMaps(records.Namespace).Get(cm.Name)
	require.NoError(t, err)
	want := cm.DeepCopy()
	want.ManagedFields, want.Annotations = nil, nil
	assert.Equal(t, want.ObjectMeta, got.ObjectMeta)
	assert.Nil(t, got.Data)
	v, ok := recordcache.Attached(got)
	require.True(t, ok)
	assert.Equal(t, connection.PhaseSucceeded, v.Phase)
	assert.Equal(t, "blob_conn_00003", v.Name)
}
