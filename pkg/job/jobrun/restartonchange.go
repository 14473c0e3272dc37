package jobrun

import (
	"context"
	"fmt"
	"slices"

	"github.com/rs/zerolog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// annotated lists the workloads of c's namespace whose restart-on-change
// annotation names c. It is asked only when c's data changed (or c is back
// for its scheduled restart): a re-render that changed nothing lists
// nothing. Without the permission to list (an RBAC narrowed by an admin,
// the chart of an older release after a rollback while this sc-job still
// runs) the annotation is not looked for: it is an extra, and c's own
// rendering and binding must not fail for it.
func (r *Runner) annotated(ctx context.Context, log zerolog.Logger, c connection.Connection) ([]bind.Ref, error) {
	if r.bindings.meta == nil {
		return nil, nil
	}
	refs, err := bind.Annotated(ctx, r.bindings.meta, c.Spec.Scope, c.Spec.Name)
	switch {
	case apierrors.IsForbidden(err):
		log.Warn().Str("step", StepBind).Err(err).Msg(say(c, "cannot list workloads: their %s annotation is not looked for", bind.AnnotationRestartOnChange))
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%s: %w", StepBind, err)
	}
	return refs, nil
}

// tokens answers the binder's question for a workload's restart-on-change
// annotation: c's own token as this run leaves it (own; "" when c is
// going), another connection's from its rendered Secret (its UID and data
// hash, as c's own is made), nothing for a connection that does not exist,
// is being deleted, opted out or has no Secret.
func (r *Runner) tokens(c connection.Connection, own string, all *records) bind.Tokens {
	return func(ctx context.Context, ns, name string) (string, string, bool, error) {
		if name == c.Spec.Name && ns == c.Spec.Scope {
			return c.Spec.ID(), own, own != "", nil
		}
		var o connection.Connection
		found := false
		if all != nil {
			all.each(func(x connection.Connection) bool {
				found = x.Spec.Name == name && x.Spec.Scope == ns
				if found {
					o = x
				}
				return !found
			})
		}
		if !found || o.Deletion != nil || (o.Spec.Binding != nil && o.Spec.Binding.NoRestart) {
			return "", "", false, nil
		}
		sec, err := r.cfg.Client.CoreV1().Secrets(ns).Get(ctx, connection.SecretName(o.Spec.ID()), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return "", "", false, nil
		case err != nil:
			return "", "", false, err
		}
		return o.Spec.ID(), restartToken(sec.Annotations[render.AnnotationDataHash], string(sec.UID)), true, nil
	}
}

// secretUpdated: this render changed an existing rendered Secret. A
// created one is not news to a workload (it could not have read it
// before), and asking for annotated workloads on every create would cost a
// bulk of new connections four LISTs each.
func secretUpdated(res apply.Result, objs render.Objects) bool {
	if objs.Secret == nil {
		return false
	}
	return slices.ContainsFunc(res.Objects, func(o apply.Object) bool {
		return o.Ref.Kind == render.KindSecret && o.Ref.Name == objs.Secret.Name && o.Outcome == apply.Updated
	})
}

// appendNew appends the refs not in refs already.
func appendNew(refs []bind.Ref, more ...bind.Ref) []bind.Ref {
	for _, ref := range more {
		if !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	return refs
}
