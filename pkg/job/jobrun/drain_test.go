package jobrun

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// orderStore records the order in which the run takes connections (its
// fresh read starts each one) and runs hook at the n-th.
type orderStore struct {
	*store.Store
	mu    sync.Mutex
	order []string
	n     int
	hook  func()
	// hooked is closed when the hook has returned. Workers that take a
	// connection after the n-th wait for it, so while the hook runs each
	// holds at most the one it took and none races through the queue.
	hooked     chan struct{}
	hookedOnce sync.Once
}

func (s *orderStore) Snapshot(ctx context.Context, id string) (store.Snapshot, error) {
	s.mu.Lock()
	s.order = append(s.order, id)
	at := len(s.order)
	s.hookedOnce.Do(func() { s.hooked = make(chan struct{}) })
	s.mu.Unlock()
	switch {
	case at == s.n:
		s.hook()
		close(s.hooked)
	case at > s.n && s.hook != nil:
		<-s.hooked
	}
	return s.Store.Snapshot(ctx, id)
}

func (s *orderStore) taken() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order)
}

// settledConnections stores n connections and marks them Succeeded, as a
// Helm upgrade's re-render finds them.
func (f *fixture) settledConnections(n int) []string {
	f.t.Helper()
	ids := make([]string, n)
	for i := range n {
		c := f.apply(f.secretChange(fmt.Sprintf("c%04d", i)))
		ids[i] = c.Spec.ID()
		_, err := f.store.UpdateStatus(context.Background(), ids[i], func(c *connection.Connection) error {
			c.Status.Phase, c.Status.Reason, c.Status.ObservedGeneration = connection.PhaseSucceeded, ReasonRendered, c.Generation
			return nil
		})
		require.NoError(f.t, err)
	}
	return ids
}

// A request that arrives while 1,000 connections are re-rendered is taken
// by the next free worker, before the re-renders still queued.
func TestDueWorkOvertakesTheReRender(t *testing.T) {
	f := newQuickFixture(t)
	settled := f.settledConnections(1000)
	var r *Runner
	st := &orderStore{Store: f.store, n: 1, hook: func() {
		f.watched()
		f.apply(f.secretChange("new1"))
		f.offered(r, "new1")
	}}
	r = f.runner(func(c *Config) { c.Store = st; c.RenderAll = true })
	sum, err := r.Run(context.Background())
	require.NoError(t, err)

	order := st.taken()
	require.Len(t, order, 1001)
	assert.Equal(t, settled[0], order[0], "the re-render had begun")
	assert.Equal(t, "new1", order[1], "the new request went before the 999 re-renders still queued")
	assert.Equal(t, settled[1:], order[2:], "then the re-render went on, in order")
	assert.Equal(t, 1001, sum.Rendered)
	assert.Equal(t, 1, sum.Arrived)
	assert.Equal(t, connection.PhaseSucceeded, f.get("new1").Status.Phase)
}

// A changed connection (a new request for one queued for re-render) moves
// up to the due level and is taken before the re-render ends, by the same
// run, at its new generation.
func TestChangeDuringALongReRenderIsTaken(t *testing.T) {
	const workers = 4
	f := newQuickFixture(t)
	settled := f.settledConnections(200)
	last := settled[len(settled)-1]
	change := f.secretChange(last)
	change.Spec.Labels = map[string]string{"v": "2"}
	var (
		r       *Runner
		before  int
		waiting = make(chan struct{})
	)
	st := &orderStore{Store: f.store, n: 10}
	st.hook = func() {
		f.watched()
		f.apply(change)
		// Another worker may take it as soon as it is due.
		f.offered(r, last, func() bool { return slices.Contains(st.taken()[10:], last) })
		before = len(st.taken())
		close(waiting)
	}
	r = f.runner(func(c *Config) { c.Store = st; c.RenderAll = true; c.Workers = workers })
	sum, err := r.Run(context.Background())
	require.NoError(t, err)
	<-waiting

	order := st.taken()
	require.Len(t, order, 200, "each connection taken once")
	at := slices.Index(order, last)
	assert.Less(t, at, before+workers-1, "taken as soon as a worker was free (at most the others' current re-renders first), not last")
	c := f.get(last)
	assert.Equal(t, int64(2), c.Status.ObservedGeneration)
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase)
	assert.Equal(t, 1, sum.Arrived)
	assert.Equal(t, 200, sum.Rendered)
}

// lingering starts r and returns its outcome's channel once r is idle and
// lingering (its clock has a timer waiting).
func lingering(t *testing.T, r *Runner, clk *clocktesting.FakeClock) <-chan outcome {
	t.Helper()
	done := make(chan outcome, 1)
	go func() {
		sum, err := r.Run(context.Background())
		done <- outcome{sum, err}
	}()
	require.Eventually(t, clk.HasWaiters, 10*time.Second, time.Millisecond, "the run never lingered")
	return done
}

type outcome struct {
	sum Summary
	err error
}

// endLinger lets linger pass on clk until the run ends.
func endLinger(t *testing.T, clk *clocktesting.FakeClock, linger time.Duration, done <-chan outcome) outcome {
	t.Helper()
	var out outcome
	require.Eventually(t, func() bool {
		select {
		case out = <-done:
			return true
		default:
		}
		if clk.HasWaiters() {
			clk.Step(linger)
		}
		return false
	}, 10*time.Second, time.Millisecond, "the run did not end after its linger")
	return out
}

// A request that arrives while an idle run lingers is rendered by it: one
// run, one pod start, one Event, one self-deletion for the burst.
func TestWorkArrivingWhileLingeringIsTakenBySameRun(t *testing.T) {
	const linger = 10 * time.Second
	f := newFixture(t, ownJob())
	f.apply(f.secretChange("db1"))
	clk := clocktesting.NewFakeClock(time.Now())
	r := f.runner(func(c *Config) { c.Linger = linger; c.Clock = clk })
	done := lingering(t, r, clk)
	require.Equal(t, connection.PhaseSucceeded, f.get("db1").Status.Phase)
	assert.True(t, jobExists(t, f), "lingering: the Job is still there")

	f.watched()
	f.apply(f.secretChange("db2"))
	require.Eventually(t, func() bool { return f.get("db2").Status.Phase == connection.PhaseSucceeded }, 10*time.Second, time.Millisecond)
	out := endLinger(t, clk, linger, done)
	require.NoError(t, out.err)
	assert.Equal(t, 2, out.sum.Rendered)
	assert.Equal(t, 1, out.sum.Arrived)
	assert.Equal(t, []string{"Normal RunCompleted sc-job: sc-job: 2 connections rendered, 0 deleted, 0 failed; 1 arrived while it ran"}, f.events())
	assert.False(t, jobExists(t, f), "deleted once, at the end")
	lists, watches := f.records()
	assert.Equal(t, [2]int{1, 1}, [2]int{lists, watches})
}

// With nothing new, the run ends once Linger has passed, not before.
func TestRunEndsAfterLingerWithoutNewWork(t *testing.T) {
	const linger = 10 * time.Second
	f := newFixture(t, ownJob())
	f.apply(f.secretChange("db1"))
	clk := clocktesting.NewFakeClock(time.Now())
	done := lingering(t, f.runner(func(c *Config) { c.Linger = linger; c.Clock = clk }), clk)

	clk.Step(linger - time.Second)
	select {
	case <-done:
		t.Fatal("the run ended before its linger passed")
	default:
	}
	assert.True(t, jobExists(t, f))
	clk.Step(time.Second)
	select {
	case out := <-done:
		require.NoError(t, out.err)
		assert.Equal(t, 1, out.sum.Rendered)
		assert.Zero(t, out.sum.Arrived)
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not end when its linger passed")
	}
	assert.False(t, jobExists(t, f), "the run deleted its Job")
}

// MaxRun bounds the linger: a run that has lasted it ends once idle.
func TestMaxRunCutsTheLingerShort(t *testing.T) {
	f := newFixture(t)
	f.apply(f.secretChange("db1"))
	clk := clocktesting.NewFakeClock(time.Now())
	done := lingering(t, f.runner(func(c *Config) { c.Linger = time.Hour; c.MaxRun = time.Minute; c.Clock = clk }), clk)
	clk.Step(time.Minute)
	select {
	case out := <-done:
		require.NoError(t, out.err)
		assert.Equal(t, 1, out.sum.Rendered)
	case <-time.After(10 * time.Second):
		t.Fatal("the run outlived MaxRun")
	}
}

// A connection this run failed permanently stays this run's failure when
// the run, still lingering as its backoff ends, retries it and it fails
// the same way: the run still fails and keeps its Job.
func TestNewFailureStaysNewWhenRetriedInTheSameRun(t *testing.T) {
	const linger = time.Hour
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: "sc-db1-secret"}}
	f := newFixture(t, ownJob(), foreign)
	f.apply(f.secretChange("db1"))
	clk := clocktesting.NewFakeClock(time.Now())
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	r := f.runner(func(c *Config) {
		c.Linger, c.Clock, c.Attempts = linger, clk, 3
		// Statuses are stamped by Now: moved past the backoff, the retry the
		// run scheduled for itself finds the connection due again.
		c.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	done := lingering(t, r, clk)
	first := f.get("db1")
	require.Equal(t, connection.PhaseFailed, first.Status.Phase)

	// The backoff ends (now moves past retryAfter) and the run is told so
	// the way a due version reaches it: a new version of the record.
	mu.Lock()
	now = first.Status.RetryAfter.Add(time.Second)
	mu.Unlock()
	f.watched()
	_, err := f.store.UpdateStatus(context.Background(), "db1", func(c *connection.Connection) error {
		c.Status.Message += "."
		return nil
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return f.get("db1").Status.Attempts == 2 }, 10*time.Second, time.Millisecond, "never retried")

	out := endLinger(t, clk, linger, done)
	require.ErrorIs(t, out.err, ErrFailed)
	require.Len(t, out.sum.Failures, 1, "failed anew by this run, whatever its retry found")
	assert.Empty(t, out.sum.StillFailing)
	assert.True(t, jobExists(t, f), "kept for kubectl logs")
}

// The run's first listing of the records is a consistent read (no
// resourceVersion), not the reflector's "0", which an API server may answer
// from a watch cache behind the latest write: a request stored just before
// the run started would be missed by it (seen on a real API server in
// TestRunDeletesSharedServiceAccountWithLastUser).
func TestRecordsAreListedAtTheLatestVersion(t *testing.T) {
	f := newFixture(t, ownJob())
	f.apply(f.secretChange("db1"))
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	var lists []metav1.ListOptions
	for _, a := range f.client.Actions() {
		if l, ok := a.(k8stesting.ListActionImpl); ok && l.GetResource().Resource == "configmaps" {
			lists = append(lists, l.ListOptions)
		}
	}
	require.Len(t, lists, 1)
	assert.Empty(t, lists[0].ResourceVersion, "a consistent read")
	assert.Equal(t, record.Selector, lists[0].LabelSelector)
}
