package statuswatch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// terminating is blob1's record as sc-job's store.Remove leaves it: the
// delete req-del applied, deleted, held by record.Finalizer.
func terminating(t *testing.T) *corev1.ConfigMap {
	c := conn("blob1", connection.PhasePending, 3, "req-del")
	c.Deletion = &connection.Deletion{RequestID: "req-del"}
	c.Status.Seq, c.Status.Incarnation = 4, "inc-1"
	cm := records.ConfigMap(t, c)
	cm.DeletionTimestamp = &metav1.Time{Time: time.Unix(1700000000, 0)}
	require.Equal(t, []string{record.Finalizer}, cm.Finalizers)
	return cm
}

// gone waits until the record is no longer in the fake API server (the
// watch releases it right after the publish the test has already seen).
func (e *env) gone(name string) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		_, err := e.client.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 10*time.Second, 5*time.Millisecond, "record %s not released", name)
}

// streamed is the number of status events the stream holds.
func (e *env) streamed() uint64 {
	e.t.Helper()
	s, err := e.admin.Stream(context.Background(), protocol.StatusStream)
	require.NoError(e.t, err)
	info, err := s.Info(context.Background())
	require.NoError(e.t, err)
	return info.State.Msgs
}

// A connection removed while no agent led: its record waits, terminating,
// and the next leader's watch reports it exactly once, then releases it.
func TestRecordRemovedWhileNoAgentLedIsReportedOnStart(t *testing.T) {
	e := start(t, nil, terminating(t))
	ev := e.next()
	assert.Equal(t, connection.PhaseDeleted, ev.Phase)
	assert.Equal(t, "req-del", ev.RequestID, "scctl connection delete --wait matches it")
	assert.EqualValues(t, 5, ev.Seq, "after the record's last write")
	assert.Equal(t, "inc-1", ev.Incarnation)
	e.gone(connection.ConfigMapName("blob1"))
	e.stop()

	assert.Equal(t, []string{"patch configmaps sc-system/sc-conn-blob1"}, fakeactions.Writes(e.client.Actions()), "only the release")
	assert.EqualValues(t, 1, e.streamed(), "exactly one event: Deleted")
}

// failingPublisher fails while the record is still held, recording each
// time that the finalizer was still there: NATS down as the watch sees it.
type failingPublisher struct {
	mu    sync.Mutex
	ready chan struct{}
	e     *env
	fails int
	calls int
	held  []bool
	next  Publisher
}

func (p *failingPublisher) Publish(ctx context.Context, ev protocol.StatusEvent) error {
	<-p.ready
	cm, err := p.e.client.CoreV1().ConfigMaps(ns).Get(ctx, connection.ConfigMapName(ev.ObjectID), metav1.GetOptions{})
	p.mu.Lock()
	p.calls++
	p.held = append(p.held, err == nil && record.HasFinalizer(cm))
	fail := p.calls <= p.fails
	p.mu.Unlock()
	if fail {
		return errors.Join(errors.New("publish status"), nats.ErrConnectionClosed)
	}
	return p.next.Publish(ctx, ev)
}

func TestDeletedIsRetriedAndTheRecordHeldUntilPublished(t *testing.T) {
	flaky := &failingPublisher{ready: make(chan struct{}), fails: 3}
	e := start(t, func(p Publisher) Publisher { flaky.next = p; return flaky }, terminating(t))
	flaky.e = e
	close(flaky.ready)

	assert.Equal(t, connection.PhaseDeleted, e.next().Phase)
	e.gone(connection.ConfigMapName("blob1"))
	e.stop()
	flaky.mu.Lock()
	defer flaky.mu.Unlock()
	assert.Equal(t, 4, flaky.calls, "three failures, then the publish")
	assert.Equal(t, []bool{true, true, true, true}, flaky.held, "held by its finalizer until the event was in the stream")
	assert.Equal(t, []string{"patch configmaps sc-system/sc-conn-blob1"}, fakeactions.Writes(e.client.Actions()))
	assert.EqualValues(t, 1, e.streamed())
	assert.Contains(t, e.logs.String(), "connection closed")
}

func blob(name string) connection.Spec {
	return connection.Spec{Name: name, Scope: "team-a",
		TargetService: connection.TargetService{Type: catalog.TargetStorageBlob, ID: "/subscriptions/x"},
		AuthInfo:      connection.AuthInfo{AuthType: catalog.AuthSecret}}
}

func phase(p connection.Phase, reason string) func(*connection.Connection) error {
	return func(c *connection.Connection) error {
		c.Status.Phase, c.Status.Reason, c.Status.Message = p, reason, "" // as sc-job leaves it
		return nil
	}
}

// A drift repair within the stream's duplicate window: Succeeded, then
// Pending/Drift, then the re-render's Running and Succeeded all reach the
// control plane, in order of seq. The second Succeeded has the phase,
// reason, generation and request of the first: only its seq tells it apart.
func TestDriftRepairWithinTheDuplicateWindowIsPublished(t *testing.T) {
	e := start(t, nil)
	s := store.New(e.client, ns)
	ctx := context.Background()
	c, _, err := s.Apply(ctx, connection.Change{RequestID: "req-1", Spec: blob("blob1")})
	require.NoError(t, err)
	id := c.Spec.ID()
	first := e.next()
	require.Equal(t, connection.PhasePending, first.Phase)

	steps := []struct {
		write  func() error
		phase  connection.Phase
		reason string
	}{
		{func() error { _, err := s.UpdateStatus(ctx, id, phase(connection.PhaseSucceeded, "")); return err }, connection.PhaseSucceeded, ""},
		{func() error { return s.MarkPending(ctx, id, "Drift", "Secret team-a/sc-blob1-secret was deleted") }, connection.PhasePending, "Drift"},
		{func() error { _, err := s.UpdateStatus(ctx, id, phase(connection.PhaseRunning, "")); return err }, connection.PhaseRunning, ""},
		{func() error { _, err := s.UpdateStatus(ctx, id, phase(connection.PhaseSucceeded, "")); return err }, connection.PhaseSucceeded, ""},
	}
	last := first.Seq
	for i, st := range steps {
		require.NoError(t, st.write())
		ev := e.next()
		assert.Equal(t, st.phase, ev.Phase, "step %d", i)
		assert.Equal(t, st.reason, ev.Reason, "step %d", i)
		assert.Equal(t, "req-1", ev.RequestID)
		assert.Greater(t, ev.Seq, last, "step %d", i)
		assert.Equal(t, first.Incarnation, ev.Incarnation)
		last = ev.Seq
	}
	e.stop()
	assert.EqualValues(t, 5, e.streamed())
}

// holdDeleted holds the first Deleted publish until released: the window
// in which the removed record is still terminating.
type holdDeleted struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
	next    Publisher
}

func (p *holdDeleted) Publish(ctx context.Context, ev protocol.StatusEvent) error {
	if ev.Phase == connection.PhaseDeleted {
		p.once.Do(func() {
			close(p.entered)
			<-p.release
		})
	}
	return p.next.Publish(ctx, ev)
}

// Delete, then create again while the old record is terminating: the new
// request is refused as transient (intake retries it) until the old record
// is reported Deleted and released, then applies as a new record; the
// control plane sees Deleted for the delete and Succeeded for the create,
// and no event of the new record is taken for a duplicate of the old's.
func TestRecreateWhileTheOldRecordIsTerminating(t *testing.T) {
	hold := &holdDeleted{entered: make(chan struct{}), release: make(chan struct{})}
	e := start(t, func(p Publisher) Publisher { hold.next = p; return hold })
	s := store.New(e.client, ns)
	ctx := context.Background()
	c, _, err := s.Apply(ctx, connection.Change{RequestID: "req-1", Spec: blob("blob1")})
	require.NoError(t, err)
	id := c.Spec.ID()
	old := e.next()
	_, err = s.UpdateStatus(ctx, id, phase(connection.PhaseSucceeded, ""))
	require.NoError(t, err)
	require.Equal(t, connection.PhaseSucceeded, e.next().Phase)
	_, _, err = s.Apply(ctx, connection.Change{RequestID: "req-del", Spec: blob("blob1"), Delete: true})
	require.NoError(t, err)
	require.Equal(t, "req-del", e.next().RequestID)

	require.NoError(t, s.Remove(ctx, id)) // sc-job applied the deletion
	<-hold.entered
	create := connection.Change{RequestID: "req-3", Spec: blob("blob1")}
	_, _, err = s.Apply(ctx, create)
	require.ErrorIs(t, err, store.ErrTerminating, "the old record still owes its Deleted")
	close(hold.release)

	del := e.next()
	assert.Equal(t, connection.PhaseDeleted, del.Phase)
	assert.Equal(t, "req-del", del.RequestID)
	assert.Equal(t, old.Incarnation, del.Incarnation)
	e.gone(connection.ConfigMapName(id))
	c, applied, err := s.Apply(ctx, create) // intake's retry
	require.NoError(t, err)
	require.True(t, applied)
	// Level-triggered: a worker publishes what the record says when it
	// runs, so two quick writes may reach the stream as one. Each write
	// here waits for its event.
	pending := e.next()
	_, err = s.UpdateStatus(ctx, id, phase(connection.PhaseSucceeded, ""))
	require.NoError(t, err)
	done := e.next()
	assert.Equal(t, []any{connection.PhasePending, "req-3", int64(1)}, []any{pending.Phase, pending.RequestID, pending.Seq},
		"the new record's first write: same seq as the old record's first, not a duplicate of it")
	assert.Equal(t, []any{connection.PhaseSucceeded, "req-3", int64(2)}, []any{done.Phase, done.RequestID, done.Seq})
	assert.NotEqual(t, old.Incarnation, done.Incarnation)
	assert.Equal(t, c.Status.Incarnation, done.Incarnation)
}
