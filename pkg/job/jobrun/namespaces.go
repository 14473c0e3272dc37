package jobrun

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
)

// StepNamespace is the namespace policy check that precedes a render.
const StepNamespace = "check-namespace"

// ReasonNamespaceDenied: the record's namespace is one the policy refuses;
// it is Failed, never rendered, until it is deleted or the policy changes.
const ReasonNamespaceDenied = namespaces.ReasonDenied

// allows is the second line behind the agent's intake, which refuses such
// requests before storing them: a record stored before its namespace was
// denied, or by an agent told another policy, is never rendered. The
// release namespace is the records' own unless the policy names another.
func (r *Runner) allows(c connection.Connection) error {
	p := r.cfg.Namespaces
	if p.Release == "" {
		p.Release = r.cfg.Namespace
	}
	return p.Allows(c.Spec.Scope)
}

// spareDenied keeps a deletion with deleteResources out of a namespace the
// policy refuses: the record is removed, its objects there are kept and
// the log and a Warning Event say so. The chart's admission policies refuse
// sc-job's deletes in such a namespace too, and a delete that can never
// succeed would leave the record Failed for good; a kept object can still
// be deleted by hand.
func (r *Runner) spareDenied(ctx context.Context, log zerolog.Logger, c connection.Connection, refs []connection.ResourceRef) (apply.Result, bool) {
	if !c.Deletion.DeleteResources {
		return apply.Result{}, false
	}
	err := r.allows(c)
	if err == nil {
		return apply.Result{}, false
	}
	var res apply.Result
	for _, ref := range refs {
		res.Kept++
		res.Objects = append(res.Objects, apply.Object{Ref: ref, Outcome: apply.Kept})
	}
	logObjects(log, c, StepNamespace, "keep", res.Objects)
	log.Warn().Str("step", StepNamespace).Int("kept", len(refs)).Err(err).
		Msg(say(c, "%d rendered objects kept, not deleted: %v", len(refs), err))
	r.event(ctx, log, c, "Warning", ReasonNamespaceDenied, actionDelete,
		fmt.Sprintf("deleting the connection but not its %d rendered objects: %v; delete them by hand", len(refs), err))
	return res, true
}
