package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
)

// script answers each sync of a key with the next of its results.
type script struct {
	errs  []error
	after time.Duration
	calls []string
}

func (s *script) sync(_ context.Context, key string) (Result, error) {
	s.calls = append(s.calls, key)
	if len(s.errs) == 0 {
		return Result{RequeueAfter: s.after}, nil
	}
	err := s.errs[0]
	s.errs = s.errs[1:]
	return Result{}, err
}

type fixture struct {
	w     *Worker[string]
	clock *clocktesting.FakeClock
	logs  *bytes.Buffer
}

func newFixture(t *testing.T, s *script) *fixture {
	f := &fixture{clock: clocktesting.NewFakeClock(time.Unix(1700000000, 0)), logs: &bytes.Buffer{}}
	f.w = New("test", s.sync, Options[string]{
		// per-key backoff only, so the delays are exactly 1s, 2s, 4s...
		RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, time.Minute),
		Clock:       f.clock,
		Log:         zerolog.New(f.logs).Level(zerolog.DebugLevel),
	})
	t.Cleanup(f.w.Queue().ShutDown)
	return f
}

// process adds key and syncs it once, as a worker would.
func (f *fixture) process(t *testing.T, key string) {
	t.Helper()
	f.w.Add(key)
	require.True(t, f.w.ProcessNextWorkItem(context.Background()))
}

// next waits for key to come back to the queue (the queue's own goroutine
// moves it there once the fake clock passes its delay).
func (f *fixture) next(t *testing.T) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		k, _ := f.w.Queue().Get()
		got <- k
	}()
	select {
	case k := <-got:
		f.w.Queue().Done(k)
		return k
	case <-time.After(10 * time.Second):
		t.Fatal("key was not requeued")
		return ""
	}
}

func TestErrorRequeuesWithGrowingBackoffAndSuccessResetsIt(t *testing.T) {
	boom := errors.New("etcd unavailable")
	s := &script{errs: []error{boom, boom}}
	f := newFixture(t, s)
	q := f.w.Queue()

	f.process(t, "a")
	assert.Equal(t, 1, q.NumRequeues("a"))
	assert.Equal(t, 0, q.Len(), "the retry waits for its backoff")
	f.clock.Step(time.Second)
	assert.Equal(t, "a", f.next(t))

	f.process(t, "a")
	assert.Equal(t, 2, q.NumRequeues("a"), "the second failure backs off further")
	assert.Contains(t, f.logs.String(), `"level":"error"`)
	assert.Contains(t, f.logs.String(), "etcd unavailable")

	f.process(t, "a")
	assert.Equal(t, 0, q.NumRequeues("a"), "Forget on success resets the backoff")
	assert.Equal(t, []string{"a", "a", "a"}, s.calls)
}

func TestConflictAndErrRequeueRetryQuietly(t *testing.T) {
	conflict := apierrors.NewConflict(corev1.Resource("configmaps"), "sc-conn-a", errors.New("the object has been modified"))
	s := &script{errs: []error{
		fmt.Errorf("update record: %w", conflict),
		fmt.Errorf("job is being deleted: %w", ErrRequeue),
	}}
	f := newFixture(t, s)
	f.process(t, "a")
	f.process(t, "a")
	assert.Equal(t, 2, f.w.Queue().NumRequeues("a"), "both retried with backoff")
	assert.NotContains(t, f.logs.String(), `"level":"error"`)
	assert.Contains(t, f.logs.String(), `"level":"debug"`)
}

func TestRequeueAfterAddsTheKeyAgainLater(t *testing.T) {
	f := newFixture(t, &script{after: time.Minute})
	f.process(t, "a")
	q := f.w.Queue()
	assert.Equal(t, 0, q.NumRequeues("a"), "a timer is not a failure")
	assert.Equal(t, 0, q.Len())
	f.clock.Step(time.Minute)
	assert.Equal(t, "a", f.next(t))
}

func TestRunSyncsUntilContextEndsThenReturns(t *testing.T) {
	synced := make(chan string, 4)
	w := New("test", func(_ context.Context, key string) (Result, error) {
		synced <- key
		return Result{}, nil
	}, Options[string]{Log: zerolog.Nop()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		w.Run(ctx, 2)
		close(done)
	}()
	w.Add("a")
	select {
	case k := <-synced:
		assert.Equal(t, "a", k)
	case <-time.After(10 * time.Second):
		t.Fatal("no worker synced the key")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the context ended")
	}
	assert.True(t, w.Queue().ShuttingDown(), "the queue is shut down")
	assert.False(t, w.ProcessNextWorkItem(context.Background()), "no work after shutdown")
}
