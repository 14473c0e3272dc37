package jobrun

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// Steps of one connection, as logged and quoted in failure messages (the
// apply steps come from pkg/kube/apply).
const (
	StepClaim       = "claim"
	StepCredentials = "read-credentials"
	StepRender      = "render"
	StepCleanup     = "remove-stale-objects"
	StepRemove      = "remove-record"
	StepStatus      = "write-status"
)

// Event actions.
const (
	actionRender = "Render"
	actionDelete = "Delete"
	actionRun    = "Run"
)

// errMovedOn: the record changed while sc-job worked on it; the status
// belongs to the newer request, which the run's watch offers next.
var errMovedOn = errors.New("connection changed while it was processed")

// retryBackoff spaces attempts at errors retrying may fix (a credential
// Secret mid-write, an API server hiccup).
var retryBackoff = wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.2}

// process does one connection's work: rerender says it was listed only
// because of RenderAll (settled, not due).
func (r *Runner) process(ctx context.Context, c connection.Connection, all *records, rerender bool) result {
	id := c.Spec.ID()
	log := r.log.With().Str("connection", c.Spec.Name).Str("objectId", id).Str("namespace", c.Spec.Scope).
		Int64("generation", c.Generation).Str("requestId", c.Status.LastRequestID).Logger()

	// A fresh read, not a claim: the watch may lag, and a newer request, another run's outcome or a removal since then decides
	// whether there is still work and which version of it. Nothing is
	// written to say the run started: the outcome below is the one status
	// write of this connection's run, and every status write checks that the
	// record is still the version read here (sameWork). That write starts
	// from this read (UpdateStatusFrom): it reads again only on a conflict.
	fresh, err := r.store.Snapshot(ctx, id)
	if err != nil {
		lvl := log.Error()
		if store.IsNotFound(err) {
			lvl = log.Info()
		}
		lvl.Str("step", StepClaim).Err(err).Msg(say(c, "could not read the connection again; skipped"))
		return result{kind: outSkipped, again: !rerender && !store.IsNotFound(err)}
	}
	if !r.wanted(fresh.Connection, rerender) {
		log.Info().Str("step", StepClaim).Str("phase", string(fresh.Status.Phase)).Msg(say(c, "no longer pending (%s); skipped", fresh.Status.Phase))
		return result{kind: outSkipped}
	}
	c = fresh.Connection
	if rerender && connection.Due(c, r.cfg.Now()) {
		// A newer request since made it due: due work, on due work's budget.
		ctx = onLane(ctx, laneDue)
	}
	action := actionRender
	if c.Deletion != nil {
		action = actionDelete
	}
	started := fmt.Sprintf("started to %s generation %d", lower(action), c.Generation)
	if !connection.Due(c, r.cfg.Now()) {
		started = fmt.Sprintf("started to re-render generation %d (%s)", c.Generation, c.Status.Phase)
	}
	if lf := c.Status.LastFailure; lf != nil && c.Status.Attempts > 0 && sameStreak(lf, c) {
		log.Info().Str("step", StepClaim).Int("attempt", c.Status.Attempts+1).Time("failingSince", lf.Since).Str("reason", lf.Reason).
			Msg(say(c, "still failing since %s: %s; retrying (attempt %d)", stamp(lf.Since), lf.Reason, c.Status.Attempts+1))
	}
	log.Info().Str("step", StepClaim).Str("phase", string(c.Status.Phase)).Msg(say(c, "%s", started))

	var (
		res    apply.Result
		step   string
		learnt ownership
		bound  binding
	)
	if c.Deletion != nil {
		res, step, err = r.delete(ctx, log, c, all, &learnt)
	} else {
		res, step, err = r.render(ctx, log, &c, all, &learnt, &bound)
	}
	if err != nil {
		return r.setback(ctx, log, fresh, c, action, step, err, res.Writes(), learnt)
	}
	if c.Deletion != nil {
		// No Event: the run's summary Event counts it, and the record is gone.
		log.Info().Str("step", StepRemove).Str("phase", string(connection.PhaseDeleted)).Msg(say(c, "%s", deletedNote(c, res)))
		return result{kind: outDeleted, writes: res.Writes(), wrote: true}
	}
	return r.succeed(ctx, log, fresh, c, res, learnt, bound)
}

// wanted: c, freshly read, still has work for this run: it is due, or
// RenderAll listed it settled and it still is (a newer request since made
// it due, which is wanted too).
func (r *Runner) wanted(c connection.Connection, rerender bool) bool {
	return connection.Due(c, r.cfg.Now()) || (rerender && settled(c))
}

// settled: nothing is pending for c, so only RenderAll renders it again:
// Succeeded, or Failed and waiting out its backoff. A connection waiting
// out a transient error or its namespace (Pending) is left to its backoff,
// as the release before this one did (its MarkPending left them alone).
func settled(c connection.Connection) bool {
	return c.Deletion == nil && (c.Status.Phase == connection.PhaseSucceeded || c.Status.Phase == connection.PhaseFailed)
}

// render applies c's objects and records them in c.Status.Resources, and
// in learnt the UIDs that prove them c's.
func (r *Runner) render(ctx context.Context, log zerolog.Logger, c *connection.Connection, all *records, learnt *ownership, bound *binding) (apply.Result, string, error) {
	if err := r.allows(*c); err != nil {
		return apply.Result{}, StepNamespace, err
	}
	var creds connection.Credentials
	err := r.retry(ctx, func() error {
		var err error
		creds, err = r.store.Credentials(ctx, *c)
		return err
	})
	if err != nil {
		return apply.Result{}, StepCredentials, err
	}
	log.Debug().Str("step", StepCredentials).Int("keys", len(creds)).Msg(say(*c, "read %d credential keys", len(creds)))
	objs, err := render.Render(*c, creds)
	if err != nil {
		return apply.Result{}, StepRender, err
	}
	log.Debug().Str("step", StepRender).Int("objects", len(objs.Refs())).Msg(say(*c, "rendered %d objects", len(objs.Refs())))
	var res apply.Result
	err = r.retry(ctx, func() error {
		var err error
		res, err = r.applier.Apply(ctx, apply.OwnerOf(*c), objs)
		learnt.learn(res.Objects)
		return err
	})
	// Objects written before a failure are logged too: they were written.
	logObjects(log, *c, "apply", "rendered", res.Objects)
	if err != nil {
		return res, stepOf(err, "apply"), err
	}

	// Objects rendered before but not any more (the client id changed, the
	// auth type moved away from workload identity) are removed like a delete
	// with deleteResources, so a stale ServiceAccount does not linger.
	stale := minus(union(c.Status.Resources, ownedRefs(c.Status)), objs.Refs())
	if len(stale) > 0 {
		cleaned, err := r.applier.Delete(ctx, apply.OwnerOf(*c), stale, r.inUse(*c, all))
		// Not rendered any more: forgotten whether deleted or kept (a
		// ServiceAccount another connection records as its own).
		learnt.forget(stale...)
		res.Deleted += cleaned.Deleted
		logObjects(log, *c, StepCleanup, "remove stale", cleaned.Objects)
		if err != nil {
			log.Warn().Str("step", StepCleanup).Err(err).Msg(say(*c, "could not remove objects it no longer renders"))
		}
	}
	c.Status.Resources = objs.Refs()

	// The workloads last: they reference what was just rendered.
	b, err := r.bindWorkloads(ctx, log, *c, objs, res, all)
	if err != nil {
		return res, StepBind, err
	}
	*bound, c.Status.Bound = b, b.state
	return res, "", nil
}

func (r *Runner) delete(ctx context.Context, log zerolog.Logger, c connection.Connection, all *records, learnt *ownership) (apply.Result, string, error) {
	id := c.Spec.ID()
	var res apply.Result
	refs := union(union(c.Status.Resources, ownedRefs(c.Status)), render.Refs(c.Spec))
	kept, spared := r.spareDenied(ctx, log, c, refs)
	if !spared {
		// Unbound before anything is deleted: a pod must not start
		// referencing a Secret that is gone.
		if err := r.unbindWorkloads(ctx, c, all); err != nil {
			return res, StepBind, err
		}
	}
	if spared {
		res = kept
	} else if c.Deletion.DeleteResources {
		err := r.retry(ctx, func() error {
			var err error
			res, err = r.applier.Delete(ctx, apply.OwnerOf(c), refs, r.inUse(c, all))
			learnt.learn(res.Objects)
			return err
		})
		logObjects(log, c, "delete", "delete", res.Objects)
		if err != nil {
			return res, stepOf(err, "delete"), err
		}
	} else {
		log.Info().Str("step", "delete").Int("kept", len(c.Status.Resources)).
			Msg(say(c, "%d rendered objects kept (deleteResources not requested)", len(c.Status.Resources)))
	}
	remove := func() error {
		// A newer request re-created the connection: its record stays and
		// the run's watch offers it.
		if err := r.store.Remove(ctx, id); !errors.Is(err, store.ErrNotDeleting) {
			return err
		}
		return nil
	}
	if err := r.retry(ctx, remove); err != nil {
		return res, StepRemove, err
	}
	return res, "", nil
}

// inUse says whether a connection other than c still renders the
// ServiceAccount. A connection whose own deletion also removes resources
// does not count; one that keeps its resources does.
func (r *Runner) inUse(c connection.Connection, all *records) apply.InUse {
	return func(ns, name string) bool {
		used := false
		all.each(func(o connection.Connection) bool {
			if o.Spec.ID() == c.Spec.ID() || o.Spec.Scope != ns || o.Spec.AuthInfo.AuthType != catalog.AuthWorkloadIdentity {
				return true
			}
			if o.Deletion != nil && o.Deletion.DeleteResources {
				return true
			}
			used = o.Spec.AuthInfo.ClientID != "" && connection.ServiceAccountName(o.Spec.AuthInfo.ClientID) == name
			return !used
		})
		return used
	}
}

// succeed records c's outcome: read is the record as this run read it,
// c the same with the rendered resources (render fills them in). When the
// record already says exactly this (a re-render that changed nothing),
// nothing is written: a settled connection costs no write per run.
func (r *Runner) succeed(ctx context.Context, log zerolog.Logger, read store.Snapshot, c connection.Connection, res apply.Result, learnt ownership, b binding) result {
	refs := c.Status.Resources
	msg := fmt.Sprintf("rendered generation %d: %d created, %d updated, %d unchanged", c.Generation, res.Created, res.Updated, res.Unchanged) + restartNote(b)
	phase, reason := connection.PhaseSucceeded, ReasonRendered
	var retryAfter *time.Time
	if !b.restartAt.IsZero() {
		// Rendered and bound; the rolling restart for the Secret's new
		// data waits (settle, window) and this connection comes back for it.
		phase, reason, retryAfter = connection.PhasePending, connection.ReasonRestartScheduled, &b.restartAt
		msg = fmt.Sprintf("rendered generation %d; the restart of its workloads for the Secret's new data is scheduled at %s (restarts are batched, at most one per workload per window)",
			c.Generation, stamp(b.restartAt))
	}
	if res.Writes() == 0 && retryAfter == nil && len(b.restarted) == 0 && upToDate(read.Connection, c, refs, learnt) {
		log.Info().Str("step", StepStatus).Str("phase", string(connection.PhaseSucceeded)).Int("writes", 0).
			Msg(say(c, "unchanged (%d objects as rendered); nothing written", res.Unchanged))
		return result{kind: outRendered, unchanged: true}
	}
	ownedOnly := false
	_, err := r.store.UpdateStatusFrom(ctx, read, func(cur *connection.Connection) error {
		var err error
		if ownedOnly, err = recordOwnership(cur, c, learnt, false); ownedOnly || err != nil {
			return err
		}
		cur.Status.Phase = phase
		cur.Status.Reason = reason
		cur.Status.Message = msg
		cur.Status.ObservedGeneration = c.Generation
		cur.Status.Resources = refs
		cur.Status.Bound = c.Status.Bound
		cur.Status.Attempts, cur.Status.RetryAfter = 0, retryAfter // LastFailure stays as history
		return nil
	})
	if errors.Is(err, errMovedOn) || (err == nil && ownedOnly) {
		log.Info().Str("step", StepStatus).Msg(say(c, "a newer request arrived while rendering; it is rendered next"))
		return result{kind: outSkipped, writes: res.Writes(), wrote: err == nil}
	}
	if err != nil {
		log.Error().Str("step", StepStatus).Err(err).Msg(say(c, "rendered, but could not record Succeeded"))
		return result{kind: outSkipped, writes: res.Writes(), again: connection.Due(c, r.cfg.Now())}
	}
	if len(b.restarted) > 0 {
		// A restart is news to whoever owns the workload: an Event says
		// which and why (the summary Event only counts connections).
		r.event(ctx, log, c, "Normal", ReasonRestarted, actionRender, "restarted "+strings.Join(b.restarted, ", ")+" "+restartCause(b))
	}
	if retryAfter != nil {
		log.Info().Str("step", StepStatus).Str("phase", string(phase)).Str("reason", reason).Time("retryAfter", *retryAfter).Msg(say(c, "%s", msg))
		return result{kind: outRendered, writes: res.Writes(), wrote: true}
	}
	// No Event per success: the run's summary Event counts it, and the
	// status (scctl connection show) holds the message.
	log.Info().Str("step", StepStatus).Str("phase", string(connection.PhaseSucceeded)).Int("writes", res.Writes()).
		Msg(say(c, "succeeded (%d created, %d updated, %d unchanged)%s", res.Created, res.Updated, res.Unchanged, restartNote(b)))
	return result{kind: outRendered, writes: res.Writes(), wrote: true}
}

// upToDate: the record as read already says what a Succeeded write for c
// would say, apart from its message and time: Succeeded for this
// generation, no backoff, the same resources, and every UID learnt already
// recorded.
func upToDate(read, c connection.Connection, refs []connection.ResourceRef, learnt ownership) bool {
	st := read.Status
	if st.Phase != connection.PhaseSucceeded || st.ObservedGeneration != c.Generation || st.Attempts != 0 || st.RetryAfter != nil {
		return false
	}
	if !slices.Equal(st.Resources, refs) || !sameBound(st.Bound, c.Status.Bound) {
		return false
	}
	return !learnt.applyTo(&st) // applyTo never writes into the slices it was given
}

// setback records work that did not finish, in one of three ways:
//
//   - the target namespace is missing or terminating: parked, Pending with
//     reason NamespaceNotFound, retried after ParkedDelay or when woken;
//   - a permanent error: Failed with its reason, retried on the slow
//     FailedBase backoff (what it failed on may change unnoticed);
//   - anything else: Pending with reason Retrying on the RetryBase backoff.
//
// Each keeps the error in the status message and in LastFailure, with a
// Warning Event on the record. Only a permanent failure that is news (new
// work, or a reason other than the standing failure's) fails the run.
func (r *Runner) setback(ctx context.Context, log zerolog.Logger, read store.Snapshot, c connection.Connection, action, step string, cause error, writes int, learnt ownership) result {
	id := c.Spec.ID()
	reason, sentinel := classify(cause, c.Deletion != nil)
	f := Failure{
		Connection: c.Spec.Name, ObjectID: id, Step: step, Reason: reason, Sentinel: sentinel,
		Message: fmt.Sprintf("connection %q failed at step %s: %v", c.Spec.Name, step, cause),
	}
	kind, phase, statusReason, base := outRetrying, connection.PhasePending, ReasonRetrying, connection.RetryBase
	switch {
	case parks(cause, c.Deletion != nil):
		kind, statusReason, base = outParked, ReasonNamespaceNotFound, connection.ParkedDelay
		f.Message = fmt.Sprintf("connection %q waits for its namespace: %v", c.Spec.Name, cause)
	case errors.Is(cause, bind.ErrWorkloadNotFound):
		// Rendered, but a workload to bind is not there (yet): retried on
		// the transient backoff, so it binds soon after it appears.
		statusReason = ReasonWorkloadNotFound
		f.Message = fmt.Sprintf("connection %q waits for a workload to bind: %v", c.Spec.Name, cause)
	case permanent(cause):
		kind, phase, statusReason, base = outFailed, connection.PhaseFailed, reason, connection.FailedBase
	}
	f.Phase = phase
	now := r.cfg.Now()
	ownedOnly, again := false, false
	_, err := r.store.UpdateStatusFrom(ctx, read, func(cur *connection.Connection) error {
		// Another run (the render hook and a launched run may overlap)
		// finished this very work meanwhile: this run's failure is stale.
		// A re-render of a Succeeded connection that fails now is news.
		finished := c.Status.Phase != connection.PhaseSucceeded && cur.Status.Phase == connection.PhaseSucceeded &&
			cur.Status.ObservedGeneration == c.Generation
		var err error
		if ownedOnly, err = recordOwnership(cur, c, learnt, finished); ownedOnly || err != nil {
			return err
		}
		f.Attempts, f.Since = 1, now
		if lf := cur.Status.LastFailure; lf != nil && cur.Status.Attempts > 0 && sameStreak(lf, *cur) {
			f.Attempts, f.Since = cur.Status.Attempts+1, lf.Since
			if kind == outFailed && lf.Phase == connection.PhaseFailed && lf.Reason == reason {
				kind = outStillFailed
			}
		}
		delay := connection.Backoff(base, f.Attempts)
		if kind == outParked {
			delay = base
		}
		f.RetryAfter = now.Add(delay)
		cur.Status.Phase, cur.Status.Reason, cur.Status.Message = phase, statusReason, f.Message
		cur.Status.Attempts, cur.Status.RetryAfter = f.Attempts, &f.RetryAfter
		cur.Status.LastFailure = &connection.Failure{
			Since: f.Since, Time: now, Phase: phase, Reason: reason, Message: f.Message, Run: r.cfg.Instance,
			Generation: c.Generation, RequestID: c.Status.LastRequestID,
		}
		return nil
	})
	switch {
	case errors.Is(err, errMovedOn), err == nil && ownedOnly:
		log.Info().Str("step", StepStatus).Msg(say(c, "the record moved on meanwhile (a newer request, or another run finished it); its newer version is handled next"))
		return result{kind: outSkipped, writes: writes, wrote: err == nil}
	case err != nil:
		// The status still says what it said (due, unless this was a
		// re-render of a settled connection): this run tries again
		// (result.again), or a later one.
		again = connection.Due(c, now)
		log.Error().Str("step", StepStatus).Err(err).Msg(say(c, "could not record %s", statusReason))
		// Without the status, this run's Job is the only evidence: keep it.
		if kind == outStillFailed {
			kind = outFailed
		}
		if f.Attempts == 0 {
			f.Attempts, f.Since, f.RetryAfter = 1, now, now
		}
	}
	ev := log.Error()
	if kind != outFailed {
		ev = log.Warn()
	}
	ev.Str("step", step).Str("phase", string(phase)).Str("reason", reason).Int("attempt", f.Attempts).Time("retryAfter", f.RetryAfter).
		Msg(say(c, "%s: %s: %v%s", verbOf(kind), reason, cause, retryNote(kind, f)))
	note := f.Message
	if kind != outFailed {
		note += retryNote(kind, f)
	}
	r.event(ctx, log, c, "Warning", statusReason, action, note)
	return result{kind: kind, failure: f, writes: writes, wrote: true, again: again}
}

func verbOf(k outcomeKind) string {
	switch k {
	case outRetrying:
		return "will retry"
	case outParked:
		return "parked"
	case outStillFailed:
		return "still failed"
	default:
		return "failed"
	}
}

func retryNote(k outcomeKind, f Failure) string {
	if k == outFailed {
		return ""
	}
	return fmt.Sprintf(" (attempt %d, failing since %s, next at %s)", f.Attempts, stamp(f.Since), stamp(f.RetryAfter))
}

// sameStreak: lf is about c's current work, not about an older request.
func sameStreak(lf *connection.Failure, c connection.Connection) bool {
	return lf.Generation == c.Generation && lf.RequestID == c.Status.LastRequestID
}

// recordOwnership adds learnt to cur's status, in the write the caller
// makes anyway. When cur is no longer the work this run read, nothing
// else of this run's belongs in it, but the UIDs still do: it returns
// errMovedOn when there is nothing to record (no write), and otherwise
// only=true: the caller writes them and nothing else, and reports the run
// overtaken.
//
// overtaken says the record, though the same work, was finished by
// another run: it is treated like a newer request.
func recordOwnership(cur *connection.Connection, c connection.Connection, learnt ownership, overtaken bool) (only bool, err error) {
	changed := learnt.applyTo(&cur.Status)
	switch {
	case sameWork(cur, c) && !overtaken:
		return false, nil
	case changed:
		return true, nil
	}
	return false, errMovedOn
}

// sameWork: the record is still the version this run read: the same
// generation, request and deletion. A new request changes the request id
// (and the generation when the spec or credentials changed), so its work
// is never marked done by an older one's result. A record another run
// finished meanwhile is the same work: writing the same outcome again is
// harmless, and what this run learnt (UIDs) belongs in it.
func sameWork(cur *connection.Connection, c connection.Connection) bool {
	return cur.Generation == c.Generation && cur.Status.LastRequestID == c.Status.LastRequestID &&
		(cur.Deletion == nil) == (c.Deletion == nil)
}

// retry repeats f for errors that retrying may fix, a few times.
func (r *Runner) retry(ctx context.Context, f func() error) error {
	b := retryBackoff
	b.Steps = r.cfg.Attempts
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, b, func(context.Context) (bool, error) {
		last = f()
		if last == nil {
			return true, nil
		}
		if permanent(last) {
			return false, last
		}
		return false, nil
	})
	if last != nil {
		return last
	}
	return err
}

// event reports a failure on c's record ConfigMap, with the record's UID so
// that `kubectl describe configmap` lists it.
func (r *Runner) event(ctx context.Context, log zerolog.Logger, c connection.Connection, eventType, reason, action, note string) {
	if err := r.events.record(ctx, c.Spec.ID(), c.RecordUID, eventType, reason, action, note); err != nil {
		log.Warn().Str("step", "event").Err(err).Msg("could not record Event")
	}
}

func stepOf(err error, fallback string) string {
	var se *apply.StepError
	if errors.As(err, &se) {
		return se.Step
	}
	return fallback
}

func deletedNote(c connection.Connection, res apply.Result) string {
	if !c.Deletion.DeleteResources {
		return "deleted; rendered objects kept as requested"
	}
	return fmt.Sprintf("deleted with its rendered objects: %d deleted, %d kept (shared, gone or not ours)", res.Deleted, res.Kept)
}

func lower(action string) string {
	if action == actionDelete {
		return "delete"
	}
	return "render"
}

// ownedRefs are the objects whose UIDs s records: with a failed run's
// objects among them, which Resources (written on success) never lists.
func ownedRefs(s connection.Status) []connection.ResourceRef {
	out := make([]connection.ResourceRef, 0, len(s.Owned))
	for _, o := range s.Owned {
		out = append(out, o.ResourceRef)
	}
	return out
}

func minus(a, b []connection.ResourceRef) []connection.ResourceRef {
	var out []connection.ResourceRef
	for _, x := range a {
		if !contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func union(a, b []connection.ResourceRef) []connection.ResourceRef {
	out := append([]connection.ResourceRef(nil), a...)
	for _, x := range b {
		if !contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func contains(refs []connection.ResourceRef, x connection.ResourceRef) bool {
	for _, r := range refs {
		if r == x {
			return true
		}
	}
	return false
}
