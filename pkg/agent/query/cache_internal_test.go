package query

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	testrecords "github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// The cache decodes a record once per version and holds no ConfigMap: a
// version it holds already (what a relist delivers) reuses its entry; a
// new version is decoded once; a terminating record leaves the list.
func TestCacheDecodesOncePerVersionAndHoldsNoConfigMaps(t *testing.T) {
	a := testrecords.ConfigMap(t, testrecords.Connection("alpha", connection.PhaseSucceeded, 1))
	b := testrecords.ConfigMap(t, testrecords.Connection("beta", connection.PhaseSucceeded, 1))
	client := fake.NewClientset(a, b)
	factory := launcher.NewRecordsFactory(client, testrecords.Namespace, 0)
	c, err := NewCache(factory, zerolog.Nop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	testrecords.Start(t, client, 1, ctx.Done(), factory)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	snap, err := c.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, snap.Len())
	assert.Equal(t, int64(2), c.decodes.Load())

	for _, o := range c.informer.GetIndexer().List() {
		r, ok := o.(*compactRecord)
		require.True(t, ok, "%T held", o)
		m := r.GetObjectMeta()
		assert.Empty(t, m.GetLabels(), "identity only")
		assert.Empty(t, m.GetAnnotations())
		assert.Empty(t, m.GetManagedFields())
		assert.Equal(t, testrecords.Namespace, m.GetNamespace())
		assert.NotEmpty(t, m.GetUID())
		assert.NotEmpty(t, m.GetResourceVersion())
		if r.entry != nil {
			assert.Equal(t, connection.ConfigMapName(r.entry.id), m.GetName(), "the id is the name's")
		}
	}

	// A relist hands the same version over again: not decoded again.
	held, ok, err := c.informer.GetIndexer().GetByKey(testrecords.Namespace + "/" + a.Name)
	require.NoError(t, err)
	require.True(t, ok)
	again, err := c.compact(a.DeepCopy())
	require.NoError(t, err)
	assert.Same(t, held, again)
	assert.Equal(t, int64(2), c.decodes.Load())
	same, err := c.compact(held)
	require.NoError(t, err)
	assert.Same(t, held, same, "the transform is idempotent")

	// A new version is decoded once and replaces the entry.
	next := testrecords.Connection("alpha", connection.PhaseFailed, 2)
	cm := testrecords.ConfigMap(t, next)
	cm.ResourceVersion = "2"
	_, err = client.CoreV1().ConfigMaps(testrecords.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		e := listed(t, c, "alpha")
		return e != nil && string(e.raw) != string(held.(*compactRecord).entry.raw)
	}, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, int64(3), c.decodes.Load())

	// Terminating (deleted, held by its finalizer): not listed.
	cm = cm.DeepCopy()
	cm.ResourceVersion = "3"
	now := metav1.Now()
	cm.DeletionTimestamp = &now
	_, err = client.CoreV1().ConfigMaps(testrecords.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { s, err := c.Snapshot(ctx); return err == nil && s.Len() == 1 }, 10*time.Second, 5*time.Millisecond)
	assert.Nil(t, listed(t, c, "alpha"))
}

// listed is the entry named name in c's current Snapshot; nil if none.
func listed(t *testing.T, c *Cache, name string) *entry {
	t.Helper()
	s, err := c.Snapshot(context.Background())
	require.NoError(t, err)
	for _, e := range s.entries {
		if e.name == name {
			return e
		}
	}
	return nil
}

// Before its first sync the cache answers nothing, and says so once the
// query's deadline has passed, rather than an empty list.
func TestCacheBeforeSyncFailsAtTheDeadline(t *testing.T) {
	c, err := NewCache(launcher.NewRecordsFactory(fake.NewClientset(), testrecords.Namespace, 0), zerolog.Nop())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = c.Snapshot(ctx)
	require.ErrorIs(t, err, ErrNotSynced)
	assert.False(t, c.Synced())
}
