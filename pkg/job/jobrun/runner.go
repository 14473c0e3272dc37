package jobrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/utils/clock"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// Store is the part of pkg/kube/store a run needs.
type Store interface {
	Snapshot(ctx context.Context, id string) (store.Snapshot, error)
	Credentials(ctx context.Context, c connection.Connection) (connection.Credentials, error)
	UpdateStatusFrom(ctx context.Context, snap store.Snapshot, mutate func(*connection.Connection) error) (connection.Connection, error)
	Remove(ctx context.Context, id string) error
}

// Config wires a Runner.
type Config struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface // for SecretProviderClasses; may be nil
	// Store defaults to store.New(Client, Namespace).
	Store Store
	// Namespace holds the records and sc-job's own Job.
	Namespace string
	// Namespaces is the agent's namespace policy: a record whose namespace
	// it refuses is Failed with ReasonNamespaceDenied, never rendered. Its
	// Release defaults to Namespace.
	Namespaces namespaces.Policy
	// JobName is deleted when every connection succeeded; "" never deletes.
	JobName string
	// RenderAll renders every settled connection (Succeeded or Failed)
	// once besides the due ones (the Helm install/upgrade hook), writing
	// only what changed: an unchanged connection costs no write.
	RenderAll bool
	// Workers render connections in parallel (default 4).
	Workers int
	// Linger is how long an idle run (nothing queued or in flight) waits
	// for more work before it ends: a burst of requests sent one after
	// another is rendered by one warm run instead of a pod start each.
	// 0 ends the run as soon as it is idle.
	Linger time.Duration
	// MaxRun bounds a run under a constant stream of work (default 5m):
	// once it has lasted MaxRun it stops lingering and takes no newly due
	// work (Summary.Deferred; the launcher starts the next run for it once
	// this Job is gone); what is queued, a Helm hook's re-render included,
	// is still finished. Keep it well below the Job's activeDeadlineSeconds.
	MaxRun time.Duration
	// Attempts per connection for errors that retrying may fix (default 3).
	Attempts int
	// Instance names this run in Events (the pod name; default the hostname).
	Instance string
	Log      zerolog.Logger
	// Summary receives the final summary as a plain line, the last one
	// `kubectl logs job/sc-job` shows in text mode. When nil the summary is
	// the message of the log's step=summary entry instead, so a JSON log
	// stays all JSON.
	Summary io.Writer
	// Now stamps statuses and decides what is due (default time.Now).
	Now func() time.Time
	// Clock times Linger and MaxRun (default the real clock).
	Clock clock.WithTicker
	// RestartWindow is the least time between two rolling restarts of a
	// bound workload for new Secret data (default bind.DefaultWindow).
	RestartWindow time.Duration
	// Metadata lists workloads' metadata, for the restart-on-change
	// annotation (pkg/kube/bind); nil: that annotation is not looked for.
	Metadata metadata.Interface
	// RestartSettle holds such a restart after the data changed, so that
	// connections changed together restart a workload once (default
	// DefaultRestartSettle).
	RestartSettle time.Duration
}

// Runner is one sc-job run.
type Runner struct {
	cfg     Config
	store   Store
	applier *apply.Applier
	events  *events
	log     zerolog.Logger
	// drain is the run in progress (Run sets it).
	drain    *drain
	bindings *bindings
}

// DefaultMaxRun is Config.MaxRun's default: half the launcher's default
// activeDeadlineSeconds (600), so a run bounded by it still has time to
// finish what it queued.
const DefaultMaxRun = 5 * time.Minute

// ErrConfig: the Runner was built without something it needs.
var ErrConfig = errors.New("invalid sc-job configuration")

// ErrFailed is returned by Run when at least one connection failed.
var ErrFailed = errors.New("some connections failed")

// New validates cfg and fills in defaults.
func New(cfg Config) (*Runner, error) {
	if cfg.Client == nil || cfg.Namespace == "" {
		return nil, fmt.Errorf("%w: a client and the records' namespace are required", ErrConfig)
	}
	if cfg.Store == nil {
		cfg.Store = store.New(cfg.Client, cfg.Namespace)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Linger < 0 {
		return nil, fmt.Errorf("%w: linger %s is negative", ErrConfig, cfg.Linger)
	}
	if cfg.MaxRun <= 0 {
		cfg.MaxRun = DefaultMaxRun
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.Instance == "" {
		cfg.Instance, _ = os.Hostname()
		if cfg.Instance == "" {
			cfg.Instance = ReportingController
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.RestartWindow < 0 || cfg.RestartSettle < 0 {
		return nil, fmt.Errorf("%w: restart window %s and settle %s must not be negative", ErrConfig, cfg.RestartWindow, cfg.RestartSettle)
	}
	if cfg.RestartSettle == 0 {
		cfg.RestartSettle = DefaultRestartSettle
	}
	return &Runner{
		cfg:      cfg,
		store:    cfg.Store,
		applier:  apply.New(cfg.Client, cfg.Dynamic),
		events:   &events{client: cfg.Client, namespace: cfg.Namespace, instance: cfg.Instance, now: cfg.Now},
		log:      cfg.Log,
		bindings: newBindings(bind.NewBinder(cfg.Client, cfg.RestartWindow, cfg.Now), cfg.RestartSettle, cfg.Metadata),
	}, nil
}

// Run drains all due work (connection.Due) and, with RenderAll, re-renders
// every settled connection once, from a watch on the records: work that
// arrives while it runs is taken too, before any re-render. It ends once
// idle for Linger (or MaxRun passed), writes the summary line and, unless
// this run failed a connection permanently or could not record an outcome
// (Summary.OK), deletes its own Job. It returns ErrFailed (with the
// summary) when it did, or another error when the run itself could not
// proceed (records unreadable). Connections that were failing before the
// run, are retrying or wait for their namespace never fail it: a failure
// belongs to its connection.
func (r *Runner) Run(ctx context.Context) (Summary, error) {
	start := r.cfg.Now()
	sum := newSummary()
	sum.maxTries = r.cfg.Attempts
	r.drain = newDrain(r, sum)
	err := r.drain.run(ctx)
	out := r.drain.finish(sum.finish(r.cfg.Now().Sub(start)))
	r.summarise(out)
	if err != nil {
		return out, err
	}
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	job, jobErr := r.ownJob(ctx)
	if sum.acted() || !out.OK() {
		r.runEvent(ctx, job, out)
	}
	if !out.OK() {
		return out, ErrFailed
	}
	return out, r.deleteOwnJob(ctx, out, job, jobErr)
}

// summarise writes the run's one-sentence summary: as a plain line when
// Summary is set, else as a log entry with the counts as fields.
func (r *Runner) summarise(out Summary) {
	if r.cfg.Summary != nil {
		fmt.Fprintln(r.cfg.Summary, out.Line())
		return
	}
	ev := r.log.Info()
	if !out.OK() {
		ev = r.log.Error()
	}
	ev.Str("step", "summary").Int("rendered", out.Rendered).Int("deleted", out.Deleted).
		Int("failed", len(out.Failures)).Int("retrying", len(out.Retrying)).
		Int("parked", len(out.Parked)).Int("stillFailing", len(out.StillFailing)).Int("corrupt", out.Corrupt).
		Int("stillPending", out.StillPending).Int("arrived", out.Arrived).Int("deferred", out.Deferred).Int("writes", out.Writes).
		Dur("duration", out.Duration).Msg(out.Line())
}

// noteWaiting logs, once per run, a connection left alone because its
// backoff is not over, so the log of a run after a failed one still says
// what is failing, since when and where to look.
func (r *Runner) noteWaiting(c connection.Connection, sum *summary) {
	lf := c.Status.LastFailure
	f := Failure{Connection: c.Spec.Name, ObjectID: c.Spec.ID(), Phase: c.Status.Phase, Reason: lf.Reason, Message: lf.Message,
		Since: lf.Since, Attempts: c.Status.Attempts, RetryAfter: *c.Status.RetryAfter}
	if !sum.wait(f) {
		return
	}
	r.log.Info().Str("connection", c.Spec.Name).Str("objectId", c.Spec.ID()).Str("step", "list").Str("phase", string(c.Status.Phase)).
		Str("reason", lf.Reason).Time("failingSince", lf.Since).Time("retryAfter", f.RetryAfter).Str("run", lf.Run).
		Msg(say(c, "still failing since %s: %s: %s (last run %s; next try at %s)", stamp(lf.Since), lf.Reason, lf.Message, lf.Run, stamp(f.RetryAfter)))
}

// ownJob reads the Job this run is (JobName), for its summary Event and
// its self-deletion; nil when there is none (a run outside a Job).
func (r *Runner) ownJob(ctx context.Context) (*batchv1.Job, error) {
	if r.cfg.JobName == "" {
		return nil, nil
	}
	job, err := r.cfg.Client.BatchV1().Jobs(r.cfg.Namespace).Get(ctx, r.cfg.JobName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil // run outside a Job (kubeconfig), or already deleted
	case err != nil:
		return nil, fmt.Errorf("read own Job %s: %w", r.cfg.JobName, err)
	}
	return job, nil
}

// runEvent writes the run's one Event: the summary line, on its Job. A
// success of a connection has no Event of its own (a failure does, on the
// connection's record), so a run's Events do not grow with its work.
func (r *Runner) runEvent(ctx context.Context, job *batchv1.Job, out Summary) {
	eventType, reason := "Normal", ReasonRunCompleted
	if !out.OK() {
		eventType, reason = "Warning", ReasonRunFailed
	}
	if err := r.events.run(ctx, r.cfg.JobName, job, eventType, reason, out.Line()); err != nil {
		r.log.Warn().Str("step", "event").Err(err).Msg("could not record the run's Event")
	}
}

func (r *Runner) deleteOwnJob(ctx context.Context, out Summary, job *batchv1.Job, err error) error {
	switch {
	case err != nil:
		// Deleting blind could erase the evidence of an earlier failed pod
		// of this Job: keep the Job and say why.
		return fmt.Errorf("before deleting it: %w", err)
	case job == nil:
		return nil
	}
	if f, ok := failedInJob(out, job.CreationTimestamp.Time); ok {
		// The Job is the run, its pods are attempts: a failure an earlier
		// pod of this Job found is this run's, so the Job must end Failed
		// for kubectl describe, not Complete. Decided from the connection's
		// failure time, not status.failed, which the Job controller may not
		// have counted yet when it starts the next pod.
		r.log.Error().Str("step", "delete-job").Str("job", r.cfg.JobName).
			Msgf("connection %q failed in an earlier pod of this Job (%s): the run fails", f.Connection, f.Reason)
		return fmt.Errorf("%w: connection %q failed in an earlier pod of this Job", ErrFailed, f.Connection)
	}
	if job.Status.Failed > 0 {
		// A pod of this Job failed before this one for another reason
		// (evicted, killed): its log is the evidence a user reads with
		// kubectl logs; leave the finished Job to the launcher.
		r.log.Info().Str("step", "delete-job").Str("job", r.cfg.JobName).Int32("failedPods", job.Status.Failed).
			Msg("kept own Job: an earlier pod of it failed and its log stays readable")
		return nil
	}
	bg := metav1.DeletePropagationBackground
	// The UID precondition: never a Job of the same name created after this run's.
	opts := metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &job.UID}}
	err = r.cfg.Client.BatchV1().Jobs(r.cfg.Namespace).Delete(ctx, r.cfg.JobName, opts)
	switch {
	case err == nil:
		r.log.Info().Str("step", "delete-job").Str("namespace", r.cfg.Namespace).Str("job", r.cfg.JobName).Msg("no connection newly failed; deleted own Job")
	case apierrors.IsNotFound(err):
		// run outside a Job (kubeconfig) or already deleted
	default:
		// The work is done; a Job left behind is only clutter, and the
		// launcher replaces it when new work arrives.
		r.log.Warn().Str("step", "delete-job").Str("job", r.cfg.JobName).Err(err).Msg("could not delete own Job")
	}
	return nil
}

// failedInJob finds a connection still failing whose streak began once the
// Job existed: an earlier pod of this Job failed it.
func failedInJob(out Summary, created time.Time) (Failure, bool) {
	if created.IsZero() {
		return Failure{}, false // no creation time: nothing to compare with
	}
	for _, f := range out.StillFailing {
		// Only a permanent failure: a retrying or parked connection is
		// Pending and never fails a run.
		if f.Phase == connection.PhaseFailed && !f.Since.Before(created) {
			return f, true
		}
	}
	return Failure{}, false
}
