package launcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	k8srecord "k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/controller"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
)

// ControllerName names the controller in logs, the workqueue and Events.
const ControllerName = "launcher"

// Event reasons.
const (
	ReasonLaunched = "JobLaunched"
	ReasonReplaced = "JobReplaced"
	// ReasonDeleted: an outdated running Job was deleted and, nothing being
	// due, none was started in its place.
	ReasonDeleted = "JobDeleted"
)

var (
	// ErrNotOwned: a Job with our name exists that sc-extension did not
	// create; it is never deleted, and no sc-job is launched while it exists.
	ErrNotOwned = errors.New("job exists and is not managed by sc-extension")
)

// errRequeue asks for a quiet rate-limited retry: the state is in flux (a
// Job is terminating, or was created concurrently).
var errRequeue = controller.ErrRequeue

// Deps are the launcher's collaborators.
type Deps struct {
	Client kubernetes.Interface
	// Records is an informer on the record ConfigMaps in the agent's
	// namespace; Jobs one on Jobs there, narrowed to the Job's name.
	Records coreinformers.ConfigMapInformer
	Jobs    batchinformers.JobInformer
	// Namespaces is a cluster-wide informer on Namespaces that caches only
	// their metadata (NewNamespacesFactory): a namespace that appears wakes
	// the connections parked on it.
	Namespaces coreinformers.NamespaceInformer
	// Versions is the decoded-record cache of Records (recordcache.New);
	// nil builds one. Controllers that share an informer share its cache,
	// so each record version is decoded once.
	Versions *recordcache.Cache
	// Waker makes a parked connection due now (pkg/kube/store's Wake).
	Waker    Waker
	Recorder k8srecord.EventRecorder
	// Clock decides when a connection is due and when a failed Job has been
	// kept long enough; tests pass a fake.
	Clock   clock.WithTicker
	Metrics *health.Metrics
	Log     zerolog.Logger
}

// Controller reconciles the single Job sc-job against the pending work.
type Controller struct {
	cfg    Config
	key    string
	client kubernetes.Interface
	// template is the AnnotationTemplate of every Job this agent builds.
	template string
	// records is the records informer's indexer, read through WorkIndex;
	// versions holds each record version decoded.
	records  cache.Indexer
	versions *recordcache.Cache
	jobs     batchlisters.JobLister
	synced   []cache.InformerSynced
	recorder k8srecord.EventRecorder
	clock    clock.WithTicker
	metrics  *health.Metrics
	log      zerolog.Logger
	worker   *controller.Worker[string]
	// wake wakes parked connections; its queue is keyed by namespace name.
	wake *waker
}

// New registers the event handlers; call Run to start working.
func New(d Deps, cfg Config) (*Controller, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Client == nil || d.Records == nil || d.Jobs == nil || d.Namespaces == nil || d.Waker == nil || d.Recorder == nil {
		return nil, fmt.Errorf("%w: client, informers, waker and recorder are required", ErrInvalidConfig)
	}
	if d.Clock == nil {
		d.Clock = clock.RealClock{}
	}
	log := d.Log.With().Str("controller", ControllerName).Logger()
	if d.Versions == nil {
		v, err := recordcache.New(d.Records.Informer(), log)
		if err != nil {
			return nil, fmt.Errorf("launcher: %w", err)
		}
		d.Versions = v
	}
	if err := addIndexes(d.Records.Informer(), d.Versions); err != nil {
		return nil, fmt.Errorf("launcher: index records: %w", err)
	}
	c := &Controller{
		cfg:      cfg,
		key:      cfg.Namespace + "/" + cfg.JobName,
		template: jobFor(cfg, newWork(nil)).Annotations[AnnotationTemplate],
		client:   d.Client,
		records:  d.Records.Informer().GetIndexer(),
		versions: d.Versions,
		jobs:     d.Jobs.Lister(),
		synced: []cache.InformerSynced{d.Records.Informer().HasSynced, d.Jobs.Informer().HasSynced,
			d.Namespaces.Informer().HasSynced},
		recorder: d.Recorder,
		clock:    d.Clock,
		metrics:  d.Metrics,
		log:      log,
	}
	c.worker = controller.New(ControllerName, c.reconcile, controller.Options[string]{Clock: d.Clock, Log: c.log})
	// Every change to a record or to the Job can change the answer, and
	// there is only one answer to compute: all events map to one key.
	enqueue := func(any) { c.worker.Add(c.key) }
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(oldObj, newObj any) {
			o, okO := oldObj.(metav1.Object)
			n, okN := newObj.(metav1.Object)
			if okO && okN && o.GetResourceVersion() == n.GetResourceVersion() {
				return // periodic resync: nothing changed
			}
			enqueue(newObj)
		},
		DeleteFunc: enqueue,
	}
	if _, err := d.Records.Informer().AddEventHandler(handler); err != nil {
		return nil, fmt.Errorf("launcher: watch records: %w", err)
	}
	if _, err := d.Jobs.Informer().AddEventHandler(handler); err != nil {
		return nil, fmt.Errorf("launcher: watch jobs: %w", err)
	}
	wk, err := newWaker(d, c.records, d.Versions, c.log)
	if err != nil {
		return nil, err
	}
	c.wake = wk
	return c, nil
}

// Run works until ctx is cancelled.
func (c *Controller) Run(ctx context.Context) error {
	c.log.Info().Msg("waiting for informer caches")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.worker.Queue().ShutDown()
		c.wake.worker.Queue().ShutDown()
		return fmt.Errorf("launcher: informer caches did not sync: %w", ctx.Err())
	}
	c.worker.Add(c.key) // decide once even if nothing changes
	c.log.Info().Msg("started")
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.wake.worker.Run(ctx, 1)
	}()
	// One worker: there is only one key.
	c.worker.Run(ctx, 1)
	<-done
	c.log.Info().Msg("stopping")
	return nil
}

// reconcile is the worker's sync: a Job that is not ours is reported and
// forgotten, since retrying cannot help; the Job's own events bring us back
// when its owner removes it.
func (c *Controller) reconcile(ctx context.Context, _ string) (controller.Result, error) {
	after, err := c.sync(ctx)
	if errors.Is(err, ErrNotOwned) {
		c.log.Warn().Err(err).Str("namespace", c.cfg.Namespace).Str("job", c.cfg.JobName).Msg("not launching sc-job")
		return controller.Result{}, nil
	}
	return controller.Result{RequeueAfter: after}, err
}

// sync compares the due work with the Job and acts. A positive duration
// asks to be called again then: a connection's backoff or parking runs out,
// or a failed Job's keep time does. Connections that wait are never a
// reason to start sc-job: it would find nothing due, exit and delete
// itself, and the launcher would start it again.
//
// The Job is looked at first: while sc-job runs, which is while most
// record writes happen, the due work is not needed at all.
func (c *Controller) sync(ctx context.Context) (time.Duration, error) {
	now := c.clock.Now()
	job, err := c.jobs.Jobs(c.cfg.Namespace).Get(c.cfg.JobName)
	switch {
	case apierrors.IsNotFound(err):
		w, err := c.dueWork(now)
		if err != nil {
			return 0, err
		}
		if len(w.items) == 0 {
			c.logWaiting(w, now)
			return w.wait(now), nil
		}
		return 0, c.launch(ctx, w, nil)
	case err != nil:
		return 0, fmt.Errorf("get job from cache: %w", err)
	}

	log := c.log.With().Str("namespace", job.Namespace).Str("job", job.Name).Logger()
	switch {
	case !ownedByUs(job):
		return 0, fmt.Errorf("job %s/%s: %w", job.Namespace, job.Name, ErrNotOwned)
	case job.DeletionTimestamp != nil:
		return 0, fmt.Errorf("job %s/%s is being deleted: %w", job.Namespace, job.Name, errRequeue)
	}
	done, cond := finished(job)
	switch {
	case !done && job.Annotations[AnnotationTemplate] != c.template:
		return c.replaceOutdated(ctx, job, now, log)
	case !done:
		// A running sc-job drains everything pending, including work that
		// arrived after it started; if it misses some, its own deletion
		// brings us back here.
		return 0, nil
	}
	w, err := c.dueWork(now)
	if err != nil {
		return 0, err
	}
	if len(w.items) == 0 {
		// Nothing due. A failed Job stays for `kubectl logs`; a completed
		// one is sc-job's to delete.
		c.logWaiting(w, now)
		return w.wait(now), nil
	}
	newWork := job.Annotations[AnnotationDigest] != w.digest
	age := now.Sub(cond.LastTransitionTime.Time)
	if !newWork && age < c.cfg.KeepFailedFor {
		remaining := c.cfg.KeepFailedFor - age
		log.Debug().Dur("retryIn", remaining).Msg("keeping finished sc-job for inspection")
		// A connection whose backoff ends first changes the due set, which
		// is new work.
		if wait := w.wait(now); wait > 0 && wait < remaining {
			return wait, nil
		}
		return remaining, nil
	}
	why := "new work arrived"
	if !newWork {
		why = fmt.Sprintf("kept for %s, retrying", c.cfg.KeepFailedFor)
	}
	log.Info().Str("condition", string(cond.Type)).Str("conditionReason", cond.Reason).Str("why", why).Msg("replacing finished sc-job")
	if err := c.delete(ctx, job); err != nil {
		return 0, err
	}
	return 0, c.launch(ctx, w, &replaced{job: job, cond: cond, why: why})
}

// whyOutdated is why a running Job is replaced, for the log and the Event.
const whyOutdated = "its pod template is outdated (an earlier release or configuration of the agent built it)"

// replaceOutdated deletes a running Job whose template is not the one this
// agent builds (none: a release before template hashes), and starts a fresh
// one if work is due. Left alone, a warm sc-job of the previous release
// would render the work sent after an upgrade with the previous code: it
// lingers for more (job.linger), up to --max-run under a steady stream.
// Killing it mid-run is safe: records are level-triggered, so what it was
// rendering is still due and the fresh run renders it. With nothing due it
// is deleted all the same, so that the next request finds no old run
// waiting for it.
func (c *Controller) replaceOutdated(ctx context.Context, job *batchv1.Job, now time.Time, log zerolog.Logger) (time.Duration, error) {
	w, err := c.dueWork(now)
	if err != nil {
		return 0, err
	}
	log = log.With().Str("template", job.Annotations[AnnotationTemplate]).Str("wantTemplate", c.template).Logger()
	if len(w.items) == 0 {
		if err := c.delete(ctx, job); err != nil {
			return 0, err
		}
		log.Info().Msg("deleted outdated sc-job; nothing is due")
		c.recorder.Event(job, corev1.EventTypeNormal, ReasonDeleted,
			fmt.Sprintf("Deleted running %s because %s; nothing is due, so none was started", c.cfg.JobName, whyOutdated))
		c.logWaiting(w, now)
		return w.wait(now), nil
	}
	log.Info().Str("why", whyOutdated).Msg("replacing outdated sc-job")
	if err := c.delete(ctx, job); err != nil {
		return 0, err
	}
	return 0, c.launch(ctx, w, &replaced{job: job, why: whyOutdated})
}

// replaced is the Job a launch replaces; cond is zero for a running one.
type replaced struct {
	job  *batchv1.Job
	cond batchv1.JobCondition
	why  string
}

// dueWork lists the records sc-job has work for at now (connection.Due),
// and when the earliest of the others that wait becomes due. It reads
// WorkIndex: settled records cost nothing, and no record is decoded here.
func (c *Controller) dueWork(now time.Time) (work, error) {
	var (
		items []workItem
		next  time.Time
	)
	for _, value := range []string{WorkDue, WorkWaiting} {
		objs, err := c.records.ByIndex(WorkIndex, value)
		if err != nil {
			return work{}, fmt.Errorf("list records with work from cache: %w", err)
		}
		for _, obj := range objs {
			cm, ok := obj.(*corev1.ConfigMap)
			if !ok {
				continue
			}
			v := c.versions.Get(cm)
			switch {
			case v.Err != nil || !v.HasWork:
				continue // filed from this very version: never, unless the cache was not fed
			case now.Before(v.DueAt):
				if next.IsZero() || v.DueAt.Before(next) {
					next = v.DueAt
				}
				continue
			}
			items = append(items, workItem{id: record.ID(cm), generation: v.Generation, requestID: v.LastRequestID, record: cm})
		}
	}
	w := newWork(items)
	w.next = next
	return w, nil
}

func (c *Controller) logWaiting(w work, now time.Time) {
	if w.next.IsZero() {
		return
	}
	c.log.Debug().Time("nextDue", w.next).Dur("retryIn", w.wait(now)).Msg("nothing due; looking again when a backoff runs out")
}

// delete removes a Job we own. The UID precondition makes sure a
// Job created meanwhile by someone else is never the one deleted.
func (c *Controller) delete(ctx context.Context, job *batchv1.Job) error {
	err := c.client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
		Preconditions:     &metav1.Preconditions{UID: &job.UID},
	})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err):
		return fmt.Errorf("delete job %s/%s: changed meanwhile: %w", job.Namespace, job.Name, errRequeue)
	default:
		return fmt.Errorf("delete job %s/%s: %w", job.Namespace, job.Name, err)
	}
}

// launch creates the Job for w; prev is the Job it replaces, if any.
func (c *Controller) launch(ctx context.Context, w work, prev *replaced) error {
	created, err := c.client.BatchV1().Jobs(c.cfg.Namespace).Create(ctx, jobFor(c.cfg, w), metav1.CreateOptions{FieldManager: connection.FieldManager})
	switch {
	case apierrors.IsAlreadyExists(err):
		// Another leader's launch, or the replaced Job is still going away.
		return fmt.Errorf("create job %s/%s: %w", c.cfg.Namespace, c.cfg.JobName, errRequeue)
	case err != nil:
		return fmt.Errorf("create job %s/%s: %w", c.cfg.Namespace, c.cfg.JobName, err)
	}

	reason, metric, msg := ReasonLaunched, health.LaunchNew,
		fmt.Sprintf("Started %s for %d pending connection(s): %s", c.cfg.JobName, len(w.items), w.ids(10))
	if prev != nil {
		reason, metric = ReasonReplaced, health.LaunchReplaced
		state := "was running"
		if prev.cond.Type != "" {
			state = fmt.Sprintf("%s (%s)", finishedVerb(prev.cond), prev.cond.Reason)
		}
		msg = fmt.Sprintf("Replaced %s that %s because %s; started it for %d pending connection(s): %s",
			c.cfg.JobName, state, prev.why, len(w.items), w.ids(10))
	}
	c.metrics.JobLaunched(metric)
	// One Event, on the Job: one per due record would cost an API write per
	// connection per launch (the message names the first ten).
	c.recorder.Event(created, corev1.EventTypeNormal, reason, msg)
	c.log.Info().Str("namespace", created.Namespace).Str("job", created.Name).Int("pending", len(w.items)).
		Str("digest", w.digest).Bool("replaced", prev != nil).Msg("launched sc-job")
	return nil
}

func finishedVerb(cond batchv1.JobCondition) string {
	if cond.Type == batchv1.JobComplete {
		return "completed"
	}
	return "failed"
}
