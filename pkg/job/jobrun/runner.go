package jobrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// Store is the part of pkg/kube/store a run needs.
type Store interface {
	Snapshot(ctx context.Context, id string) (store.Snapshot, error)
	List(ctx context.Context) ([]connection.Connection, error)
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
	// MaxPasses bounds re-listing for work that arrived during the run
	// (default 20).
	MaxPasses int
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
	Now     func() time.Time
}

// Runner is one sc-job run.
type Runner struct {
	cfg     Config
	store   Store
	applier *apply.Applier
	events  *events
	log     zerolog.Logger
}

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
	if cfg.MaxPasses <= 0 {
		cfg.MaxPasses = 20
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
	return &Runner{
		cfg:     cfg,
		store:   cfg.Store,
		applier: apply.New(cfg.Client, cfg.Dynamic),
		events:  &events{client: cfg.Client, namespace: cfg.Namespace, instance: cfg.Instance, now: cfg.Now},
		log:     cfg.Log,
	}, nil
}

// Run drains all due work (connection.Due), re-listing until nothing is due
// or MaxPasses is reached, writes the summary line and, unless this run
// failed a connection permanently (Summary.OK), deletes its own Job. It
// returns ErrFailed (with the summary) when it did, or another error when
// the run itself could not proceed (records unreadable). Connections that
// were failing before the run, are retrying or wait for their namespace
// never fail it: a failure belongs to its connection.
func (r *Runner) Run(ctx context.Context) (Summary, error) {
	start := r.cfg.Now()
	sum := newSummary()
	sum.maxTries = r.cfg.Attempts
	for sum.Passes < r.cfg.MaxPasses {
		pending, listed, err := r.pending(ctx, sum)
		if err != nil {
			out := sum.finish(r.cfg.Now().Sub(start))
			r.summarise(out)
			return out, err
		}
		if len(pending) == 0 {
			break
		}
		sum.Passes++
		r.drain(ctx, pending, listed, sum)
		if ctx.Err() != nil {
			break
		}
	}
	out := sum.finish(r.cfg.Now().Sub(start))
	if out.Passes == r.cfg.MaxPasses {
		// Check whether the bound, not the work, ended the loop.
		if pending, _, err := r.pending(ctx, newSummary()); err == nil {
			out.StillPending = len(pending)
		}
	}
	r.summarise(out)
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
		Int("stillPending", out.StillPending).Int("passes", out.Passes).Int("writes", out.Writes).
		Dur("duration", out.Duration).Msg(out.Line())
}

// work is one connection a pass processes; rerender: listed only because
// of RenderAll (settled, not due).
type work struct {
	c        connection.Connection
	rerender bool
}

// pending lists the records and keeps those that need work: the due ones
// and, with RenderAll, every settled one this run has not rendered yet. A
// corrupt record is counted as a failure and the others still run.
func (r *Runner) pending(ctx context.Context, sum *summary) ([]work, []connection.Connection, error) {
	all, err := r.store.List(ctx)
	if err = r.skipNewer(err); err != nil {
		if !errors.Is(err, store.ErrCorrupt) {
			return nil, nil, fmt.Errorf("list connection records: %w", err)
		}
		sum.corrupt(err)
		r.log.Error().Str("step", "list").Err(err).Msg("skipping corrupt connection records")
	}
	now := r.cfg.Now()
	var out []work
	for _, c := range all {
		switch {
		case connection.Due(c, now):
			if !sum.givenUp(c) {
				out = append(out, work{c: c})
			}
		case r.cfg.RenderAll && settled(c) && !sum.processed(c):
			out = append(out, work{c: c, rerender: true})
		case c.Status.LastFailure != nil && c.Status.RetryAfter != nil:
			r.noteWaiting(c, sum)
		}
	}
	return out, all, nil
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

// drain processes one pass's pending connections with a bounded pool.
func (r *Runner) drain(ctx context.Context, pending []work, all []connection.Connection, sum *summary) {
	// Every record's UIDs: a ServiceAccount one connection created is ours
	// to the others that share it.
	r.applier.Recorded(all)
	queue := make(chan work)
	var wg sync.WaitGroup
	for range min(r.cfg.Workers, len(pending)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range queue {
				sum.record(w.c, r.process(ctx, w.c, all, w.rerender))
			}
		}()
	}
	for _, w := range pending {
		select {
		case queue <- w:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(queue)
	wg.Wait()
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
