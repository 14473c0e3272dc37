package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/internal/testkit/fakerv"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// backingOff stores a connection in phase p that waits until an hour from now.
func backingOff(t *testing.T, s *Store, p connection.Phase) (string, time.Time) {
	ctx := context.Background()
	c, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	later := s.now().Add(time.Hour)
	_, err = s.UpdateStatus(ctx, c.Spec.ID(), func(c *connection.Connection) error {
		c.Status.Phase, c.Status.Reason, c.Status.Attempts, c.Status.RetryAfter = p, "SecretIsOwned", 2, &later
		c.Status.LastFailure = &connection.Failure{Reason: "SecretIsOwned", Run: "sc-job-abcde", Generation: c.Generation, RequestID: "r1"}
		return nil
	})
	require.NoError(t, err)
	return c.Spec.ID(), later
}

func TestRetryFieldsSurviveTheRecord(t *testing.T) {
	s, _ := newStore()
	id, later := backingOff(t, s, connection.PhaseFailed)
	got, err := s.Get(context.Background(), id)
	require.NoError(t, err)
	require.NotNil(t, got.Status.RetryAfter)
	assert.True(t, later.Equal(*got.Status.RetryAfter))
	assert.Equal(t, 2, got.Status.Attempts)
	assert.Equal(t, &connection.Failure{Reason: "SecretIsOwned", Run: "sc-job-abcde", Generation: 1, RequestID: "r1"}, got.Status.LastFailure)
	assert.False(t, connection.Due(got, s.now()))
}

func TestWakeMakesABackingOffConnectionDue(t *testing.T) {
	for _, p := range []connection.Phase{connection.PhaseFailed, connection.PhasePending} {
		t.Run(string(p), func(t *testing.T) {
			s, _ := newStore()
			ctx := context.Background()
			id, _ := backingOff(t, s, p)
			require.NoError(t, s.Wake(ctx, id, "NamespaceCreated", "namespace team-a exists again"))
			got, err := s.Get(ctx, id)
			require.NoError(t, err)
			assert.True(t, connection.Due(got, s.now()))
			assert.Equal(t, connection.PhasePending, got.Status.Phase)
			assert.Equal(t, "NamespaceCreated", got.Status.Reason)
			assert.Equal(t, 2, got.Status.Attempts, "a wake that does not help backs off further")
			assert.NotNil(t, got.Status.LastFailure)
		})
	}
}

func TestWakeLeavesAConnectionThatIsNotWaiting(t *testing.T) {
	s, cs := newStore()
	ctx := context.Background()
	c, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	cs.ClearActions()
	require.NoError(t, s.Wake(ctx, c.Spec.ID(), "NamespaceCreated", "x"))
	assert.Equal(t, []string{"get configmaps sc-system/sc-conn-" + c.Spec.ID()}, fakeactions.Of(cs), "no write")
}

func TestMarkPendingMakesAFailedConnectionDue(t *testing.T) {
	s, _ := newStore()
	ctx := context.Background()
	id, _ := backingOff(t, s, connection.PhaseFailed)
	require.NoError(t, s.MarkPending(ctx, id, "Drift", "the foreign Secret was deleted"))
	got, err := s.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, connection.PhasePending, got.Status.Phase)
	assert.True(t, connection.Due(got, s.now()))
}

// The UIDs sc-job recorded are the only proof that its objects are its
// own: no other writer of the record may drop them, whether a new request,
// a delete request (sc-job deletes by them), or a wake.
func TestOwnedUIDsSurviveEveryOtherWrite(t *testing.T) {
	s, _ := newStore()
	ctx := context.Background()
	c, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	id := c.Spec.ID()
	owned := []connection.OwnedObject{{ResourceRef: connection.ResourceRef{Kind: "Secret", Namespace: "team-a", Name: connection.SecretName(id)}, UID: "uid-1"}}
	_, err = s.UpdateStatus(ctx, id, func(c *connection.Connection) error {
		c.Status.Phase, c.Status.Owned = connection.PhaseSucceeded, owned
		return nil
	})
	require.NoError(t, err)

	next := change("r2")
	next.Spec.Labels = map[string]string{"v": "2"}
	_, _, err = s.Apply(ctx, next)
	require.NoError(t, err)
	require.NoError(t, s.MarkPending(ctx, id, "Drift", "edited"))
	del := change("r3")
	del.Delete, del.DeleteResources = true, true
	_, _, err = s.Apply(ctx, del)
	require.NoError(t, err)

	got, err := s.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, owned, got.Status.Owned)
}

// A status write after a Snapshot reads nothing more when the record is as
// read, and re-reads (never overwrites) when it changed meanwhile.
func TestUpdateStatusFromWritesFromTheSnapshotAndReReadsOnConflict(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore()
	cs := fakerv.Enforce(s.client.(*fake.Clientset), "configmaps")
	c, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	id := c.Spec.ID()
	update, get := "update configmaps sc-system/"+connection.ConfigMapName(id), "get configmaps sc-system/"+connection.ConfigMapName(id)
	mark := func(reason string) func(*connection.Connection) error {
		return func(c *connection.Connection) error { c.Status.Reason = reason; return nil }
	}

	snap, err := s.Snapshot(ctx, id)
	require.NoError(t, err)
	cs.ClearActions()
	_, err = s.UpdateStatusFrom(ctx, snap, mark("first"))
	require.NoError(t, err)
	assert.Equal(t, []string{update}, fakeactions.Of(cs), "no second read")

	var seen []string
	cs.ClearActions()
	_, err = s.UpdateStatusFrom(ctx, snap, func(c *connection.Connection) error { // snap: read before "first" landed
		seen = append(seen, c.Status.Reason)
		c.Status.Message = "second"
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{snap.Status.Reason, "first"}, seen, "applied to the snapshot, then again to the record re-read")
	assert.Equal(t, []string{update, get, update}, fakeactions.Of(cs), "the stale write conflicts, the record is re-read")
	got, err := s.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "first", got.Status.Reason, "the change made since the snapshot is kept")
	assert.Equal(t, "second", got.Status.Message)
}
