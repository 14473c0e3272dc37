package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// removed stores Blob_1, deletes it (request r2) and removes it, on a fake
// API server that keeps finalized objects terminating.
func removed(t *testing.T) (*Store, *fake.Clientset, string) {
	t.Helper()
	s, cs := newStore()
	records.HonourFinalizers(cs, s.now)
	ctx := context.Background()
	_, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	del := change("r2")
	del.Delete, del.Credentials = true, nil
	c, _, err := s.Apply(ctx, del)
	require.NoError(t, err)
	cs.ClearActions()
	require.NoError(t, s.Remove(ctx, c.Spec.ID()))
	return s, cs, c.Spec.ID()
}

func TestRemoveLeavesTheRecordTerminatingForItsDeletedEvent(t *testing.T) {
	s, cs, id := removed(t)
	cm, sec := "configmaps sc-system/sc-conn-"+id, "secrets sc-system/sc-conn-"+id+"-cred"
	assert.Equal(t, []string{"get " + cm, "get " + sec, "delete " + sec, "delete " + cm}, fakeactions.Of(cs))

	ctx := context.Background()
	got, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, connection.ConfigMapName(id), metav1.GetOptions{})
	require.NoError(t, err, "held by its finalizer")
	assert.True(t, record.Terminating(got))
	assert.Equal(t, []string{record.Finalizer}, got.Finalizers)

	// to the store's users the connection is gone
	_, err = s.Get(ctx, id)
	require.ErrorIs(t, err, ErrNotFound)
	list, err := s.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)

	cs.ClearActions()
	require.NoError(t, s.Remove(ctx, id), "a second sc-job pass over it")
	assert.Equal(t, []string{"get " + cm, "get " + sec}, fakeactions.Of(cs), "nothing deleted twice")
}

// A terminating record is neither overwritten nor resurrected: a new
// request waits (transient) until the record is gone, a redelivered one is
// a duplicate, and no status write lands on it.
func TestATerminatingRecordRefusesChanges(t *testing.T) {
	s, cs, id := removed(t)
	ctx := context.Background()
	cs.ClearActions()

	_, _, err := s.Apply(ctx, change("r3"))
	require.ErrorIs(t, err, ErrTerminating)
	assert.False(t, IsNotFound(err))
	del := change("r2")
	del.Delete, del.Credentials = true, nil
	_, applied, err := s.Apply(ctx, del)
	require.NoError(t, err, "the delete that removed it, redelivered")
	assert.False(t, applied)
	_, err = s.UpdateStatus(ctx, id, func(c *connection.Connection) error { c.Status.Phase = connection.PhaseRunning; return nil })
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, s.MarkPending(ctx, id, "Drift", "x"), ErrNotFound)
	assert.Empty(t, fakeactions.Writes(cs.Actions()), "nothing written to a terminating record")

	// the leading agent reports Deleted and releases it; r3 applies now
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, connection.ConfigMapName(id), metav1.GetOptions{})
	require.NoError(t, err)
	cm.Finalizers = record.WithoutFinalizer(cm)
	_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	c, applied, err := s.Apply(ctx, change("r3"))
	require.NoError(t, err)
	assert.True(t, applied)
	assert.Nil(t, c.Deletion)
	assert.EqualValues(t, 1, c.Generation, "a new record")
}

// A record written by the previous release has no finalizer: removing it
// adds one first, so its Deleted event is owed too.
func TestRemoveHoldsARecordOfTheOlderRelease(t *testing.T) {
	c := connection.Connection{Spec: change("r1").Spec, Generation: 1, Deletion: &connection.Deletion{RequestID: "r2"},
		Status: connection.Status{Phase: connection.PhasePending, LastRequestID: "r2"}}
	legacy, err := record.New(ns, c)
	require.NoError(t, err)
	legacy.Finalizers = nil
	s, cs := newStore(legacy)
	records.HonourFinalizers(cs, s.now)
	id := c.Spec.ID()
	require.NoError(t, s.Remove(context.Background(), id))
	cm := "configmaps sc-system/sc-conn-" + id
	assert.Equal(t, []string{"get " + cm, "get secrets sc-system/sc-conn-" + id + "-cred", "update " + cm, "delete " + cm}, fakeactions.Of(cs))
	got, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), legacy.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.True(t, record.Terminating(got))
}

// Every write of a record advances its Seq by one; a write that changes
// nothing does not; a re-created connection starts again under a new
// Incarnation, so that its events never share a Nats-Msg-Id with the old.
func TestEveryRecordWriteAdvancesSeq(t *testing.T) {
	s, cs := newStore()
	records.HonourFinalizers(cs, s.now)
	ctx := context.Background()
	c, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	assert.EqualValues(t, 1, c.Status.Seq)
	first := c.Status.Incarnation
	require.NotEmpty(t, first)

	c, err = s.UpdateStatus(ctx, c.Spec.ID(), func(c *connection.Connection) error { c.Status.Phase = connection.PhaseSucceeded; return nil })
	require.NoError(t, err)
	assert.EqualValues(t, 2, c.Status.Seq)
	require.NoError(t, s.MarkPending(ctx, c.Spec.ID(), "Drift", "Secret deleted"))
	require.NoError(t, s.MarkPending(ctx, c.Spec.ID(), "Drift", "Secret deleted"), "already pending: unchanged")
	c, err = s.Get(ctx, c.Spec.ID())
	require.NoError(t, err)
	assert.EqualValues(t, 3, c.Status.Seq)
	assert.Equal(t, first, c.Status.Incarnation)

	del := change("r2")
	del.Delete, del.Credentials = true, nil
	c, _, err = s.Apply(ctx, del)
	require.NoError(t, err)
	assert.EqualValues(t, 4, c.Status.Seq)
	require.NoError(t, s.Remove(ctx, c.Spec.ID()))
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, connection.ConfigMapName(c.Spec.ID()), metav1.GetOptions{})
	require.NoError(t, err)
	cm.Finalizers = nil
	_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)

	c, _, err = s.Apply(ctx, change("r3"))
	require.NoError(t, err)
	assert.EqualValues(t, 1, c.Status.Seq)
	assert.NotEqual(t, first, c.Status.Incarnation)
}
