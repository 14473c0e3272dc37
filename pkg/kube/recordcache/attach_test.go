package recordcache

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// dataless is cm as the records informer's transform caches it: its
// metadata, no data, the summary of full attached.
func dataless(full *corev1.ConfigMap) *corev1.ConfigMap {
	out := &corev1.ConfigMap{ObjectMeta: *full.ObjectMeta.DeepCopy()}
	Attach(out, full)
	return out
}

// A cache reads the summary attached to an object instead of decoding it:
// the object holds no data to decode, and no cache holds a copy.
func TestAttachedSummaryIsRead(t *testing.T) {
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	inf := factory.Core().V1().ConfigMaps().Informer()
	c, err := New(inf, zerolog.Nop())
	require.NoError(t, err)

	conn := records.Connection("a", connection.PhaseFailed, 2)
	conn.Status.Message, conn.Status.Seq, conn.Status.Incarnation = "boom", 5, "inc-a"
	conn.Deletion = &connection.Deletion{RequestID: "req-del"}
	full := records.ConfigMap(t, conn)
	cm := dataless(full)
	require.NoError(t, inf.GetIndexer().Add(cm))

	v := c.Get(cm)
	require.NoError(t, v.Err)
	assert.Equal(t, connection.PhaseFailed, v.Phase)
	back := v.Connection()
	assert.Equal(t, "boom", back.Status.Message)
	assert.EqualValues(t, 5, back.Status.Seq)
	assert.Equal(t, "inc-a", back.Status.Incarnation)
	assert.Equal(t, "req-del", back.Deletion.RequestID)
	assert.EqualValues(t, 0, c.Decodes(), "nothing decoded by the cache")
	assert.Equal(t, 0, c.Len(), "nothing held by the cache")

	again := dataless(cm)
	w, ok := Attached(again)
	require.True(t, ok, "an object with a summary lends it")
	assert.Equal(t, v, w)
}

// An attached summary of a version that does not decode is logged once,
// when a cache first stores it, whatever the lookups.
func TestAttachedUndecodableVersionIsLoggedOnce(t *testing.T) {
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	inf := factory.Core().V1().ConfigMaps().Informer()
	logs := &bytes.Buffer{}
	c, err := New(inf, zerolog.New(logs))
	require.NoError(t, err)
	full := records.ConfigMap(t, records.Connection("bad", connection.PhasePending, 1))
	full.Data[record.KeyStatus] = "{"
	cm := dataless(full)
	require.NoError(t, inf.GetIndexer().Add(cm))
	updated := cm.DeepCopy()
	updated.ResourceVersion = "9"
	Attach(updated, full)
	require.NoError(t, inf.GetIndexer().Update(updated)) // observes cm again, as the old version
	for range 3 {
		require.ErrorIs(t, c.Get(cm).Err, record.ErrCorrupt)
	}
	assert.Equal(t, 2, strings.Count(logs.String(), "skipping undecodable record"), "once per version: %s", logs)
}

// A summary lives as long as its object: once the object is collected,
// the entry goes.
func TestAttachedSummaryGoesWithItsObject(t *testing.T) {
	full := records.ConfigMap(t, records.Connection("gone", connection.PhasePending, 1))
	before := attachedLen()
	func() {
		cm := dataless(full)
		require.Equal(t, before+1, attachedLen())
		_, ok := Attached(cm)
		require.True(t, ok)
	}()
	// Collection and its cleanups run when the runtime decides: poll.
	require.Eventually(t, func() bool { runtime.GC(); return attachedLen() <= before }, 10*time.Second, 10*time.Millisecond)
}

func attachedLen() int {
	attached.Lock()
	defer attached.Unlock()
	return len(attached.m)
}
