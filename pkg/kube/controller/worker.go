package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// ErrRequeue, wrapped into a sync error, asks for a quiet rate-limited retry:
// the state is in flux (an object is terminating, or was written
// concurrently) and a later look will settle it.
var ErrRequeue = errors.New("requeue")

// Result is what a successful sync asks of the queue.
type Result struct {
	// RequeueAfter, if positive, adds the key again after that long (a
	// timer that belongs to the object, such as a keep time running out).
	RequeueAfter time.Duration
}

// SyncFunc reconciles one key. An error retries the key with backoff.
type SyncFunc[K comparable] func(ctx context.Context, key K) (Result, error)

// Options configure a Worker; the zero value of each field has a default.
type Options[K comparable] struct {
	// RateLimiter defaults to DefaultRateLimiter.
	RateLimiter workqueue.TypedRateLimiter[K]
	// Clock drives the queue's delays; tests pass a fake one.
	Clock clock.WithTicker
	// Log is used as given: controllers pass theirs, already carrying the
	// controller field.
	Log zerolog.Logger
}

// DefaultRateLimiter is sample-controller's: the slower of a per-key
// exponential backoff and an overall token bucket, so one failing key
// backs off alone while a storm of keys cannot flood the API server.
func DefaultRateLimiter[K comparable]() workqueue.TypedRateLimiter[K] {
	return RateLimiter[K](500*time.Millisecond, 5*time.Minute, 10, 100)
}

// RateLimiter is DefaultRateLimiter with other numbers: per-key backoff
// from base to max, overall qps with burst.
func RateLimiter[K comparable](base, max time.Duration, qps float64, burst int) workqueue.TypedRateLimiter[K] {
	return workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[K](base, max),
		&workqueue.TypedBucketRateLimiter[K]{Limiter: rate.NewLimiter(rate.Limit(qps), burst)},
	)
}

// Worker owns a controller's queue and runs its sync function on it.
type Worker[K comparable] struct {
	name  string
	queue workqueue.TypedRateLimitingInterface[K]
	sync  SyncFunc[K]
	log   zerolog.Logger
}

// New returns a Worker whose queue is named name: the name label of the
// queue's workqueue_* metrics, which client-go reports for every named
// queue once a process has set its metrics provider (the agent does, in
// pkg/agent/health). One name per controller: queues sharing a name share
// their series.
func New[K comparable](name string, sync SyncFunc[K], o Options[K]) *Worker[K] {
	if o.RateLimiter == nil {
		o.RateLimiter = DefaultRateLimiter[K]()
	}
	cfg := workqueue.TypedRateLimitingQueueConfig[K]{Name: name}
	if o.Clock != nil {
		cfg.Clock = o.Clock
	}
	return &Worker[K]{
		name:  name,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(o.RateLimiter, cfg),
		sync:  sync,
		log:   o.Log,
	}
}

// Queue is the worker's queue, for event handlers to add keys to and for
// tests to inspect.
func (w *Worker[K]) Queue() workqueue.TypedRateLimitingInterface[K] { return w.queue }

// Add queues key now.
func (w *Worker[K]) Add(key K) { w.queue.Add(key) }

// Run starts workers goroutines and blocks until ctx is done; it then shuts
// the queue down and returns once every worker has finished its key.
func (w *Worker[K]) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrashWithContext(ctx)
	if workers < 1 {
		workers = 1
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			defer utilruntime.HandleCrashWithContext(ctx)
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for w.ProcessNextWorkItem(ctx) {
				}
			}, time.Second)
		})
	}
	<-ctx.Done()
	w.queue.ShutDown()
	wg.Wait()
}

// ProcessNextWorkItem takes one key off the queue and syncs it. It returns
// false once the queue is shut down. Exported for controller tests, which
// drive one key at a time instead of running workers.
func (w *Worker[K]) ProcessNextWorkItem(ctx context.Context) bool {
	key, shutdown := w.queue.Get()
	if shutdown {
		return false
	}
	defer w.queue.Done(key)

	res, err := w.sync(ctx, key)
	switch {
	case err == nil:
		w.queue.Forget(key)
		if res.RequeueAfter > 0 {
			w.queue.AddAfter(key, res.RequeueAfter)
		}
	case errors.Is(err, ErrRequeue) || apierrors.IsConflict(err):
		// Expected under concurrency: the retry re-reads. Not an error
		// worth an operator's attention.
		w.log.Debug().Err(err).Str("key", fmt.Sprint(key)).Msg("requeue")
		w.queue.AddRateLimited(key)
	default:
		w.log.Error().Err(err).Str("key", fmt.Sprint(key)).Int("retries", w.queue.NumRequeues(key)).Msg("sync failed; retrying")
		w.queue.AddRateLimited(key)
	}
	return true
}
