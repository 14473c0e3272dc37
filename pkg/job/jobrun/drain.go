package jobrun

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// drain is one run's work loop. An informer on the records (one LIST, then
// a WATCH) offers every version of every record; what has work is queued
// by priority (levels: due work before re-renders) and taken by a bounded
// pool of workers, each deciding from the latest version the watch
// delivered. The run ends once nothing is queued or in flight and no work
// arrived for Linger, or, after MaxRun, as soon as it is idle.
type drain struct {
	r      *Runner
	sum    *summary
	recs   *records
	levels *levels
	queue  workqueue.TypedDelayingInterface[string]
	// start is on cfg.Clock, which times Linger and MaxRun.
	start time.Time

	mu sync.Mutex
	// initial is each record's work as the initial listing held it: work
	// of another version arrived while the run ran.
	initial map[string]attemptKey
	synced  bool
	// taken: connections this run processed; a settled one is re-rendered
	// once per run.
	taken map[string]bool
	// arrived: connections whose work reached the run by its watch.
	arrived map[string]bool
	// deferred: connections that became due after MaxRun, left to the
	// next run (the launcher starts one once this Job is gone).
	deferred map[string]bool
}

func newDrain(r *Runner, sum *summary) *drain {
	lv := newLevels()
	return &drain{
		r: r, sum: sum, recs: newRecords(), levels: lv,
		queue: workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{
			Queue: workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[string]{Queue: lv}),
		}),
		start:   r.cfg.Clock.Now(),
		initial: map[string]attemptKey{}, taken: map[string]bool{}, arrived: map[string]bool{}, deferred: map[string]bool{},
	}
}

// run watches the records, drains them and returns once the run is over:
// nil, ctx's error, or the error that kept the records from being listed.
func (d *drain) run(ctx context.Context) error {
	defer d.queue.ShutDown()
	stop, err := d.watch(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for range d.r.cfg.Workers {
		wg.Go(func() { d.work(ctx) })
	}
	d.wait(ctx)
	// No more offers; a worker finishes what is queued (nothing, unless a
	// version arrived at the very end) and ends.
	stop()
	d.queue.ShutDown()
	wg.Wait()
	return nil
}

// watch starts the records informer and returns once its initial listing
// was offered, so every connection due at the start is queued before the
// first worker takes one. A failed listing ends the run: the records are
// unreadable (RBAC, a missing namespace), and retrying is the Job's.
func (d *drain) watch(ctx context.Context) (stop func(), err error) {
	inf := coreinformers.NewFilteredConfigMapInformer(d.r.cfg.Client, d.r.cfg.Namespace, 0, cache.Indexers{}, consistentRecords)
	// Nothing reads managedFields; 10,000 records cost less without them.
	if err := inf.SetTransform(func(obj any) (any, error) {
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			cm.ManagedFields = nil
		}
		return obj, nil
	}); err != nil {
		return nil, fmt.Errorf("watch connection records: %w", err)
	}
	listErr := make(chan error, 1)
	if err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, rf *cache.Reflector, err error) {
		select {
		case listErr <- err:
		default:
		}
		cache.DefaultWatchErrorHandler(ctx, rf, err)
	}); err != nil {
		return nil, fmt.Errorf("watch connection records: %w", err)
	}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    d.observe,
		UpdateFunc: func(_, obj any) { d.observe(obj) },
		DeleteFunc: d.removed,
	})
	if err != nil {
		return nil, fmt.Errorf("watch connection records: %w", err)
	}
	ictx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	running.Go(func() { inf.RunWithContext(ictx) })
	stop = func() {
		cancel()
		running.Wait()
	}
	synced := make(chan bool, 1)
	go func() {
		// Polled more often than cache.WaitForCacheSync's 100 ms: a warm
		// request's latency starts with this run's start.
		err := wait.PollUntilContextCancel(ictx, 5*time.Millisecond, true, func(context.Context) (bool, error) { return reg.HasSynced(), nil })
		synced <- err == nil
	}()
	select {
	case ok := <-synced:
		if ok {
			d.mu.Lock()
			d.synced = true
			d.mu.Unlock()
			return stop, nil
		}
	case err := <-listErr:
		stop()
		<-synced
		return nil, fmt.Errorf("list connection records: %w", err)
	}
	stop()
	return nil, ctx.Err()
}

// observe is the informer's add and update handler: it keeps the run's
// view of the record and offers its work.
func (d *drain) observe(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok || !record.IsRecord(cm) {
		return
	}
	id := record.ID(cm)
	if record.Terminating(cm) {
		d.recs.forget(id) // removed: its connection is gone
		return
	}
	c, err := record.Decode(cm)
	switch {
	case errors.Is(err, record.ErrUnsupportedVersion):
		if d.recs.markNewer(id, cm.ResourceVersion) {
			d.r.skipNewer(id, err)
		}
		return
	case err != nil:
		if d.recs.markCorrupt(id) {
			d.r.log.Error().Str("step", "list").Str("objectId", id).Err(err).Msg("skipping corrupt connection record")
		}
		return
	}
	d.recs.set(id, c)
	// Every record's UIDs: a ServiceAccount one connection created is
	// ours to the others that share it.
	d.r.applier.Recorded([]connection.Connection{c})
	d.mu.Lock()
	if !d.synced {
		d.initial[id] = keyOf(c)
	}
	d.mu.Unlock()
	d.offer(id, c)
}

func (d *drain) removed(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if cm, ok := obj.(*corev1.ConfigMap); ok && record.IsRecord(cm) {
		d.recs.forget(record.ID(cm))
	}
}

// offer queues c's work, if it has any: due work at once, a settled
// connection's re-render (RenderAll) behind it, and a backoff or parking
// that ends while the run still lingers when it ends.
func (d *drain) offer(id string, c connection.Connection) {
	now := d.r.cfg.Now()
	switch {
	case connection.Due(c, now):
		if d.sum.givenUp(c) {
			return
		}
		if d.bounded() {
			d.mu.Lock()
			d.deferred[id] = true
			d.mu.Unlock()
			return
		}
		d.add(id, levelDue)
	case d.r.cfg.RenderAll && settled(c) && !d.wasTaken(id):
		d.add(id, levelRerender)
	default:
		at, ok := connection.DueAt(c)
		if !ok || !now.Before(at) {
			return
		}
		if c.Status.LastFailure != nil && !d.wasTaken(id) {
			d.r.noteWaiting(c, d.sum)
		}
		if !d.bounded() {
			d.queue.AddAfter(id, at.Sub(now))
		}
	}
}

func (d *drain) add(id string, lvl level) {
	d.levels.mark(id, lvl)
	d.queue.Add(id)
}

// bounded: the run has lasted MaxRun; it takes no new work and ends as
// soon as it is idle.
func (d *drain) bounded() bool {
	return d.r.cfg.Clock.Since(d.start) >= d.r.cfg.MaxRun
}

func (d *drain) wasTaken(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.taken[id]
}

// work is one worker: it takes the next connection, due work first.
func (d *drain) work(ctx context.Context) {
	for {
		id, shutdown := d.queue.Get()
		if shutdown {
			return
		}
		if ctx.Err() == nil {
			d.take(ctx, id)
		}
		d.queue.Done(id)
		d.levels.done()
	}
}

// take processes id as its latest version says: it may have been
// settled, changed or removed since it was queued.
func (d *drain) take(ctx context.Context, id string) {
	c, ok := d.recs.get(id)
	if !ok {
		return // removed, or no longer decodable
	}
	rerender := false
	d.mu.Lock()
	switch {
	case connection.Due(c, d.r.cfg.Now()):
		if d.sum.givenUp(c) {
			d.mu.Unlock()
			return
		}
		if d.initial[id] != keyOf(c) {
			d.arrived[id] = true
		}
	case d.r.cfg.RenderAll && settled(c) && !d.taken[id]:
		rerender = true
	default:
		d.mu.Unlock()
		return
	}
	d.taken[id] = true
	d.mu.Unlock()

	if rerender {
		// Its requests wait in the re-render's budget (Limiter), not in
		// the one due work that arrives meanwhile is charged to.
		ctx = onLane(ctx, laneRerender)
	}
	res := d.r.process(ctx, c, d.recs, rerender)
	d.sum.record(c, res)
	if res.again && !d.sum.givenUp(c) {
		// Its outcome could not be recorded: try again (it is in flight,
		// so the workqueue queues it once this turn is done).
		d.add(id, levelDue)
	}
}

// wait returns when the run is over: idle (nothing queued, nothing in
// flight) and no work arrived for Linger; after MaxRun, idle at all.
func (d *drain) wait(ctx context.Context) {
	clk := d.r.cfg.Clock
	for {
		idle, pushes := d.levels.idle()
		if !idle {
			select {
			case <-d.levels.changed:
			case <-ctx.Done():
				return
			}
			continue
		}
		linger := min(d.r.cfg.Linger, d.r.cfg.MaxRun-clk.Since(d.start))
		if linger <= 0 {
			return
		}
		if d.linger(ctx, linger, pushes) {
			return
		}
	}
}

// linger waits for work while the run is idle: true when none arrived
// for d (or ctx ended), false when some did.
func (d *drain) linger(ctx context.Context, wait time.Duration, pushes uint64) bool {
	t := d.r.cfg.Clock.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-d.levels.changed:
			// A wake-up left from before the run went idle is no work.
			if idle, now := d.levels.idle(); !idle || now != pushes {
				return false
			}
		case <-t.C():
			idle, now := d.levels.idle()
			return idle && now == pushes
		case <-ctx.Done():
			return true
		}
	}
}

// finish completes the summary with what the drain knows.
func (d *drain) finish(out Summary) Summary {
	out.Corrupt = d.recs.corruptCount()
	now := d.r.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	out.Arrived = len(d.arrived)
	for id := range d.deferred {
		if c, ok := d.recs.get(id); ok && connection.Due(c, now) {
			out.Deferred++
		}
	}
	return out
}

// consistentRecords selects the records and makes the informer's first
// listing a consistent read. A reflector starts at resourceVersion "0",
// which the API server may answer from a watch cache that has not yet seen
// the latest writes: a run started right after a request was stored could
// list the record without it, find nothing due and end, leaving the work
// to the next run. "" reads at the latest version, as the passes' LIST did.
func consistentRecords(o *metav1.ListOptions) {
	o.LabelSelector = record.Selector
	if o.ResourceVersion == "0" {
		o.ResourceVersion = ""
	}
}
