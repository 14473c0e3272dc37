package jobrun

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
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
)

// errMovedOn: the record changed while sc-job worked on it; the status
// belongs to the newer request and the next pass handles it.
var errMovedOn = errors.New("connection changed while it was processed")

// retryBackoff spaces attempts at errors retrying may fix (a credential
// Secret mid-write, an API server hiccup).
var retryBackoff = wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.2}

func (r *Runner) process(ctx context.Context, c connection.Connection, all []connection.Connection) result {
	id := c.Spec.ID()
	log := r.log.With().Str("connection", c.Spec.Name).Str("objectId", id).Str("namespace", c.Spec.Scope).
		Int64("generation", c.Generation).Str("requestId", c.Status.LastRequestID).Logger()

	action := actionRender
	if c.Deletion != nil {
		action = actionDelete
	}
	claimed, err := r.store.UpdateStatus(ctx, id, func(cur *connection.Connection) error {
		if !cur.Status.Phase.NeedsWork() {
			return store.ErrUnchanged
		}
		cur.Status.Phase, cur.Status.Reason, cur.Status.Message = connection.PhaseRunning, ReasonRunning, ""
		return nil
	})
	if err != nil {
		log.Error().Str("step", StepClaim).Err(err).Msg(say(c, "could not mark the connection Running"))
		return result{kind: outSkipped}
	}
	if claimed.Status.Phase != connection.PhaseRunning {
		log.Info().Str("step", StepClaim).Str("phase", string(claimed.Status.Phase)).Msg(say(c, "no longer pending (%s); skipped", claimed.Status.Phase))
		return result{kind: outSkipped}
	}
	c = claimed
	started := fmt.Sprintf("started to %s generation %d", lower(action), c.Generation)
	log.Info().Str("step", StepClaim).Str("phase", string(connection.PhaseRunning)).Msg(say(c, "%s", started))
	r.event(ctx, log, id, "Normal", ReasonRunning, action, "sc-job "+started)

	var res apply.Result
	var step string
	if c.Deletion != nil {
		res, step, err = r.delete(ctx, log, c, all)
	} else {
		res, step, err = r.render(ctx, log, &c, all)
	}
	if err != nil {
		return r.fail(ctx, log, c, action, step, err, res.Writes())
	}
	if c.Deletion != nil {
		log.Info().Str("step", StepRemove).Str("phase", string(connection.PhaseDeleted)).Msg(say(c, "deleted"))
		r.event(ctx, log, id, "Normal", ReasonDeleted, action, deletedNote(c, res))
		return result{kind: outDeleted, writes: res.Writes()}
	}
	return r.succeed(ctx, log, c, res)
}

// render applies c's objects and records them in c.Status.Resources.
func (r *Runner) render(ctx context.Context, log zerolog.Logger, c *connection.Connection, all []connection.Connection) (apply.Result, string, error) {
	id := c.Spec.ID()
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
		res, err = r.applier.Apply(ctx, id, objs)
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
	stale := minus(c.Status.Resources, objs.Refs())
	if len(stale) > 0 {
		cleaned, err := r.applier.Delete(ctx, id, stale, r.inUse(*c, all))
		res.Deleted += cleaned.Deleted
		logObjects(log, *c, StepCleanup, "remove stale", cleaned.Objects)
		if err != nil {
			log.Warn().Str("step", StepCleanup).Err(err).Msg(say(*c, "could not remove objects it no longer renders"))
		}
	}
	c.Status.Resources = objs.Refs()
	return res, "", nil
}

func (r *Runner) delete(ctx context.Context, log zerolog.Logger, c connection.Connection, all []connection.Connection) (apply.Result, string, error) {
	id := c.Spec.ID()
	var res apply.Result
	if c.Deletion.DeleteResources {
		refs := union(c.Status.Resources, render.Refs(c.Spec))
		err := r.retry(ctx, func() error {
			var err error
			res, err = r.applier.Delete(ctx, id, refs, r.inUse(c, all))
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
		// the next pass renders it.
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
func (r *Runner) inUse(c connection.Connection, all []connection.Connection) apply.InUse {
	return func(ns, name string) bool {
		for _, o := range all {
			if o.Spec.ID() == c.Spec.ID() || o.Spec.Scope != ns || o.Spec.AuthInfo.AuthType != catalog.AuthWorkloadIdentity {
				continue
			}
			if o.Deletion != nil && o.Deletion.DeleteResources {
				continue
			}
			if o.Spec.AuthInfo.ClientID != "" && connection.ServiceAccountName(o.Spec.AuthInfo.ClientID) == name {
				return true
			}
		}
		return false
	}
}

func (r *Runner) succeed(ctx context.Context, log zerolog.Logger, c connection.Connection, res apply.Result) result {
	id := c.Spec.ID()
	refs := c.Status.Resources
	_, err := r.store.UpdateStatus(ctx, id, func(cur *connection.Connection) error {
		if !sameWork(cur, c) {
			return errMovedOn
		}
		cur.Status.Phase = connection.PhaseSucceeded
		cur.Status.Reason = ReasonRendered
		cur.Status.Message = fmt.Sprintf("rendered generation %d: %d created, %d updated, %d unchanged", c.Generation, res.Created, res.Updated, res.Unchanged)
		cur.Status.ObservedGeneration = c.Generation
		cur.Status.Resources = refs
		return nil
	})
	if errors.Is(err, errMovedOn) {
		log.Info().Str("step", StepStatus).Msg(say(c, "a newer request arrived while rendering; the next pass renders it"))
		return result{kind: outSkipped, writes: res.Writes()}
	}
	if err != nil {
		log.Error().Str("step", StepStatus).Err(err).Msg(say(c, "rendered, but could not record Succeeded"))
		return result{kind: outSkipped, writes: res.Writes()}
	}
	log.Info().Str("step", StepStatus).Str("phase", string(connection.PhaseSucceeded)).Int("writes", res.Writes()).
		Msg(say(c, "succeeded (%d created, %d updated, %d unchanged)", res.Created, res.Updated, res.Unchanged))
	r.event(ctx, log, id, "Normal", string(connection.PhaseSucceeded), actionRender,
		fmt.Sprintf("rendered generation %d into %s: %d created, %d updated, %d unchanged", c.Generation, c.Spec.Scope, res.Created, res.Updated, res.Unchanged))
	return result{kind: outRendered, writes: res.Writes()}
}

func (r *Runner) fail(ctx context.Context, log zerolog.Logger, c connection.Connection, action, step string, cause error, writes int) result {
	id := c.Spec.ID()
	reason, sentinel := classify(cause, c.Deletion != nil)
	f := Failure{
		Connection: c.Spec.Name, ObjectID: id, Step: step, Reason: reason, Sentinel: sentinel,
		Message: fmt.Sprintf("connection %q failed at step %s: %v", c.Spec.Name, step, cause),
	}
	log.Error().Str("step", step).Str("phase", string(connection.PhaseFailed)).Str("reason", reason).
		Msg(say(c, "failed: %s: %v", reason, cause))
	_, err := r.store.UpdateStatus(ctx, id, func(cur *connection.Connection) error {
		if !sameWork(cur, c) {
			return errMovedOn
		}
		cur.Status.Phase, cur.Status.Reason, cur.Status.Message = connection.PhaseFailed, reason, f.Message
		return nil
	})
	switch {
	case errors.Is(err, errMovedOn):
		log.Info().Str("step", StepStatus).Msg(say(c, "a newer request arrived meanwhile; the next pass handles it"))
		return result{kind: outSkipped, writes: writes}
	case err != nil:
		log.Error().Str("step", StepStatus).Err(err).Msg(say(c, "could not record Failed"))
	}
	r.event(ctx, log, id, "Warning", reason, action, f.Message)
	return result{kind: outFailed, failure: f, writes: writes}
}

// sameWork: the record is still the version this run claimed.
func sameWork(cur *connection.Connection, c connection.Connection) bool {
	return cur.Status.Phase == connection.PhaseRunning && cur.Generation == c.Generation &&
		cur.Status.LastRequestID == c.Status.LastRequestID && (cur.Deletion == nil) == (c.Deletion == nil)
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

func (r *Runner) event(ctx context.Context, log zerolog.Logger, id, eventType, reason, action, note string) {
	if err := r.events.record(ctx, id, eventType, reason, action, note); err != nil {
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
		return "connection deleted; rendered objects kept as requested"
	}
	return fmt.Sprintf("connection deleted with its rendered objects: %d deleted, %d kept (shared, gone or not ours)", res.Deleted, res.Kept)
}

func lower(action string) string {
	if action == actionDelete {
		return "delete"
	}
	return "render"
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
