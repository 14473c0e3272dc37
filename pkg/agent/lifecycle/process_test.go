package lifecycle_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/agent/lifecycle"
)

// journal records what happened, in order, from many goroutines.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.events...)
}

// service runs until its context ends and then journals "<name> stopped";
// ctxs, if given, receives its context once it runs.
func service(j *journal, name string, ctxs chan<- context.Context) func(context.Context) error {
	return func(ctx context.Context) error {
		if ctxs != nil {
			ctxs <- ctx
		}
		<-ctx.Done()
		j.add(name + " stopped")
		return nil
	}
}

const bound = 10 * time.Second // only a failing test waits this long

func done(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(bound):
		t.Fatal("context not done")
	}
}

// SIGTERM ends the foreground context only; the services keep running until
// Stop, which stops them in reverse order: queries, NATS, then the probes.
func TestStopsInReverseOrderAfterTheForeground(t *testing.T) {
	parent, sigterm := context.WithCancel(context.Background())
	p, ctx := lifecycle.New(parent, zerolog.Nop())
	var j journal
	ctxs := make(chan context.Context, 2)
	p.Go("health", service(&j, "health", ctxs))
	p.Defer("nats", func() { j.add("nats drained") })
	p.Go("query", service(&j, "query", ctxs))
	healthCtx, queryCtx := <-ctxs, <-ctxs

	sigterm()
	done(t, ctx)
	assert.NoError(t, healthCtx.Err(), "probes keep answering while the leader finishes")
	assert.NoError(t, queryCtx.Err(), "queries keep answering while the leader finishes")
	assert.Empty(t, j.all())

	require.NoError(t, p.Stop(nil))
	assert.Equal(t, []string{"query stopped", "nats drained", "health stopped"}, j.all())
	assert.NoError(t, p.Stop(nil), "a second Stop is a no-op")
	assert.Len(t, j.all(), 3)
}

func TestServiceStoppingOnItsOwnStopsTheProcess(t *testing.T) {
	boom := errors.New("listen tcp :8080: address already in use")
	for name, ret := range map[string]error{"with an error": boom, "without an error": nil} {
		t.Run(name, func(t *testing.T) {
			p, ctx := lifecycle.New(context.Background(), zerolog.Nop())
			var j journal
			p.Go("query", service(&j, "query", nil))
			p.Go("health", func(context.Context) error { return ret })
			done(t, ctx)

			err := p.Stop(nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "health: ")
			if ret != nil {
				assert.ErrorIs(t, err, boom)
			} else {
				assert.ErrorIs(t, err, lifecycle.ErrExited)
			}
			assert.Equal(t, []string{"query stopped"}, j.all(), "the others are still stopped in order")
		})
	}
}

// Several parts failing at once must not block each other (the first one
// wins) and must not hide the first error behind a later one.
func TestFatalKeepsTheFirstErrorAndNeverBlocks(t *testing.T) {
	p, ctx := lifecycle.New(context.Background(), zerolog.Nop())
	first, second := errors.New("launcher: bad config"), errors.New("drift: bad config")
	p.Fatal(first)
	p.Fatal(second)
	p.Fatal(nil)
	done(t, ctx)
	assert.ErrorIs(t, context.Cause(ctx), first)

	err := p.Stop(errors.New("leader: lease lost"))
	assert.ErrorIs(t, err, first)
	assert.NotErrorIs(t, err, second)
}

func TestCleanStopReportsForegroundAndStageErrors(t *testing.T) {
	parent, sigterm := context.WithCancel(context.Background())
	p, _ := lifecycle.New(parent, zerolog.Nop())
	drainErr := errors.New("unsubscribe: connection closed")
	p.Go("query", func(ctx context.Context) error { <-ctx.Done(); return drainErr })
	sigterm()
	leaderErr := errors.New("leader: release lease: timeout")
	err := p.Stop(leaderErr)
	assert.ErrorIs(t, err, leaderErr)
	assert.ErrorIs(t, err, drainErr)
	assert.Contains(t, err.Error(), "query: unsubscribe")

	p, _ = lifecycle.New(context.Background(), zerolog.Nop())
	assert.NoError(t, p.Stop(nil), "nothing failed: no error")
}

// A Fatal after Stop (a late controller error) changes nothing.
func TestFatalAfterStopIsIgnored(t *testing.T) {
	p, _ := lifecycle.New(context.Background(), zerolog.Nop())
	require.NoError(t, p.Stop(nil))
	p.Fatal(errors.New("late"))
	assert.NoError(t, p.Stop(nil))
}
