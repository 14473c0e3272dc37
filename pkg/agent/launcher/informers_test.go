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
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// terminatingRecord is a realistic record being removed: every metadata
// field a reader of the records informer looks at is set.
func terminatingRecord(i int) *corev1.ConfigMap {
	cm := realisticRecord(i)
	cm.DeletionTimestamp = &metav1.Time{Time: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}
	cm.DeletionGracePeriodSeconds = new(int64)
	cm.Finalizers = append(cm.Finalizers, "example.com/other")
	cm.Annotations["example.com/note"] = "kept: an Update of the cached record writes it back"
	return cm
}

// The transform drops managedFields and nothing else: the record decodes
// to the same connection, and every other field (which statuswatch's
// Update of the cached object writes back) is as the API server sent it.
// The object it was handed is not modified, and it is idempotent.
func TestRecordForCacheKeepsWhatReadersUse(t *testing.T) {
	for _, in := range []*corev1.ConfigMap{realisticRecord(1), terminatingRecord(2)} {
		sent := in.DeepCopy()
		require.NotEmpty(t, in.ManagedFields)

		obj, err := launcher.RecordForCache(in)
		require.NoError(t, err)
		out, ok := obj.(*corev1.ConfigMap)
		require.True(t, ok)

		assert.Nil(t, out.ManagedFields)
		assert.Equal(t, sent, in, "the reflector's object is not modified")
		want := sent.DeepCopy()
		want.ManagedFields = nil
		assert.Equal(t, want, out)

		wantConn, err := record.Decode(sent)
		require.NoError(t, err)
		gotConn, err := record.Decode(out)
		require.NoError(t, err)
		assert.Equal(t, wantConn, gotConn)
		assert.Equal(t, record.Terminating(sent), record.Terminating(out))
		assert.Equal(t, record.HasFinalizer(sent), record.HasFinalizer(out))
		assert.Equal(t, record.WithoutFinalizer(sent), record.WithoutFinalizer(out))

		again, err := launcher.RecordForCache(out)
		require.NoError(t, err)
		assert.Equal(t, out, again, "idempotent")
	}
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
	for k := range ca.Data {
		for k2 := range cb.Data {
			if k == k2 {
				assert.True(t, same(k, k2), "data key %s", k)
			}
		}
	}
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

// The records factory's informer caches records through the transform.
func TestRecordsFactoryCachesWithoutManagedFields(t *testing.T) {
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
	assert.Nil(t, got.ManagedFields)
	want := cm.DeepCopy()
	want.ManagedFields = nil
	assert.Equal(t, want.ObjectMeta, got.ObjectMeta)
	assert.Equal(t, want.Data, got.Data)
}
