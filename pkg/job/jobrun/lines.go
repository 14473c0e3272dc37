package jobrun

import (
	"fmt"

	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
)

// say is a log message for people reading `kubectl logs job/sc-job`: every
// line about a connection starts with its name, so grepping for it tells
// that connection's story. The same entries carry stable fields (step,
// connection, object, outcome, ...) for JSON pipelines. Messages quote
// errors and object names only, never a credential value.
func say(c connection.Connection, format string, args ...any) string {
	return fmt.Sprintf("connection %q: ", c.Spec.Name) + fmt.Sprintf(format, args...)
}

// logObjects writes one line per object, e.g.
// `connection "db1": rendered Secret team-a/sc-db1-secret (created)` or
// `connection "kv1": delete ServiceAccount team-a/sc-account-... (kept)`.
func logObjects(log zerolog.Logger, c connection.Connection, step, verb string, objs []apply.Object) {
	for _, o := range objs {
		obj := o.Ref.Namespace + "/" + o.Ref.Name
		log.Info().Str("step", step).Str("kind", o.Ref.Kind).Str("object", obj).Str("outcome", o.Outcome.String()).
			Msg(say(c, "%s %s %s (%s)", verb, o.Ref.Kind, obj, o.Outcome))
	}
}
