package jobrun

import (
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
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
