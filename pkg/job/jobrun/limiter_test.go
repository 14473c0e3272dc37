package jobrun

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// bucket is a rate limiter that lets everything through and records
// what asked it, into a log shared with the other lane's bucket.
type bucket struct {
	name    string
	qps     float32
	log     *[]string
	stopped bool
}

var _ flowcontrol.RateLimiter = (*bucket)(nil)

func (b *bucket) Wait(context.Context) error { *b.log = append(*b.log, b.name+" wait"); return nil }
func (b *bucket) Accept()                    { *b.log = append(*b.log, b.name+" accept") }
func (b *bucket) TryAccept() bool            { *b.log = append(*b.log, b.name+" try"); return true }
func (b *bucket) QPS() float32               { return b.qps }
func (b *bucket) Stop()                      { b.stopped = true }

// A request made for a re-render waits in the re-render's bucket; due
// work's, and whatever nobody marked (the records' watch, the run's Job
// and Event), in due work's.
func TestLimiterChargesEachLaneItsOwnBucket(t *testing.T) {
	var log []string
	due, rerender := &bucket{name: "due", qps: 100, log: &log}, &bucket{name: "rerender", qps: 500, log: &log}
	l := NewLimiter(due, rerender)
	ctx := context.Background()
	require.NoError(t, l.Wait(ctx))
	require.NoError(t, l.Wait(onLane(ctx, laneRerender)))
	require.NoError(t, l.Wait(onLane(ctx, laneDue)))
	require.NoError(t, l.Wait(onLane(onLane(ctx, laneRerender), laneDue)), "a re-render found due moves to due work's budget")
	l.Accept()
	assert.True(t, l.TryAccept())
	assert.Equal(t, []string{"due wait", "rerender wait", "due wait", "due wait", "due accept", "due try"}, log)
	assert.InDelta(t, 600, l.QPS(), 0.001, "the API server may see both budgets at once")
	l.Stop()
	assert.True(t, due.stopped)
	assert.True(t, rerender.stopped)

	log = nil
	shared := NewLimiter(due, nil)
	require.NoError(t, shared.Wait(onLane(ctx, laneRerender)))
	assert.Equal(t, []string{"due wait"}, log, "without a re-render budget both share one")
	assert.InDelta(t, 100, shared.QPS(), 0.001)
}

// laneStore records, for each connection's credential read and status
// write, the budget its context charges the request to.
type laneStore struct {
	*store.Store
	mu    sync.Mutex
	calls []string
	// hooks run before the fresh read of the connection they name.
	hooks map[string]func()
}

func (s *laneStore) note(ctx context.Context, call, id string) {
	name := map[lane]string{laneDue: "due", laneRerender: "rerender"}[laneOf(ctx)]
	s.mu.Lock()
	s.calls = append(s.calls, fmt.Sprintf("%s %s %s", call, id, name))
	s.mu.Unlock()
}

func (s *laneStore) Snapshot(ctx context.Context, id string) (store.Snapshot, error) {
	s.mu.Lock()
	hook := s.hooks[id]
	delete(s.hooks, id)
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return s.Store.Snapshot(ctx, id)
}

func (s *laneStore) Credentials(ctx context.Context, c connection.Connection) (connection.Credentials, error) {
	s.note(ctx, "credentials", c.Spec.ID())
	return s.Store.Credentials(ctx, c)
}

func (s *laneStore) UpdateStatusFrom(ctx context.Context, snap store.Snapshot, mutate func(*connection.Connection) error) (connection.Connection, error) {
	s.note(ctx, "status", snap.Connection.Spec.ID())
	return s.Store.UpdateStatusFrom(ctx, snap, mutate)
}

func (s *laneStore) recorded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Due work is charged to due work's budget and the re-render to its own:
// a request that arrives during a re-render, and a connection the
// re-render finds changed by a newer request, are due work.
func TestDueWorkAndTheReRenderHaveTheirOwnBudgets(t *testing.T) {
	f := newQuickFixture(t)
	settled := f.settledConnections(3)
	changed := f.secretChange(settled[2])
	changed.Spec.Labels = map[string]string{"v": "2"}
	var r *Runner
	st := &laneStore{Store: f.store, hooks: map[string]func(){
		settled[0]: func() {
			f.watched()
			f.apply(f.secretChange("new1"))
			f.offered(r, "new1")
		},
		// Queued for its re-render, read as changed: due work now.
		settled[2]: func() { f.apply(changed) },
	}}
	r = f.runner(func(c *Config) { c.Store = st; c.RenderAll = true })
	sum, err := r.Run(context.Background())
	require.NoError(t, err)

	assert.Equal(t, []string{
		// Stored Succeeded but never rendered: the re-render writes.
		"credentials " + settled[0] + " rerender",
		"status " + settled[0] + " rerender",
		"credentials new1 due",
		"status new1 due",
		"credentials " + settled[1] + " rerender",
		"status " + settled[1] + " rerender",
		"credentials " + settled[2] + " due",
		"status " + settled[2] + " due",
	}, st.recorded())
	assert.Equal(t, 4, sum.Rendered)
	assert.Equal(t, int64(2), f.get(settled[2]).Status.ObservedGeneration)
}
