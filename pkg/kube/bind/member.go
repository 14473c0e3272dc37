package bind

import (
	"fmt"
	"sort"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// Ref names a workload.
type Ref struct {
	Namespace string
	Kind      connection.WorkloadKind
	Name      string
}

func (r Ref) String() string { return fmt.Sprintf("%s %s/%s", r.Kind, r.Namespace, r.Name) }

// Refs lists the workloads spec binds, in its own order; the namespace is
// the spec's scope (a binding never reaches across namespaces).
func Refs(spec connection.Spec) []Ref {
	if spec.Binding == nil {
		return nil
	}
	refs := make([]Ref, 0, len(spec.Binding.Workloads))
	for _, w := range spec.Binding.Workloads {
		refs = append(refs, Ref{Namespace: spec.Scope, Kind: w.Kind, Name: w.Name})
	}
	return refs
}

// Member is one connection's share of a workload's binding: everything
// Reconcile needs of it, and nothing secret.
type Member struct {
	// Connection is the connection's name, for messages.
	Connection string
	// ID is the connection's object id (connection.ObjectID).
	ID   string
	Mode connection.BindingMode
	// Containers get the configuration; empty means every container of the
	// pod template (not init containers).
	Containers []string
	// SecretName is the rendered Secret.
	SecretName string
	// Keys are the rendered Secret's keys, sorted: one env entry each in
	// env mode (volume mode mounts the whole Secret and ignores them).
	Keys []string
	// ServiceAccount is the workload-identity ServiceAccount the pods must
	// run as; "" for other auth types.
	ServiceAccount string
	// RestartToken changes whenever the rendered Secret's data changes; ""
	// opts the connection out of restarts.
	RestartToken string
	// RestartOnly: the workload names the connection in its
	// AnnotationRestartOnChange; it restarts with the connection's data and
	// gets none of its fields.
	RestartOnly bool
	// Previous is the share last applied, when it differs: if this one is
	// refused, Previous is applied in its place, so a bad change (a
	// container name mistyped) leaves the working binding as it was.
	Previous *Member
}

// MemberOf is spec's member for the workload ref, false if spec does not
// bind ref. restartToken is the connection's current token (sc-job keeps
// it); it is ignored when the binding opts out of restarts.
func MemberOf(spec connection.Spec, ref Ref, restartToken string) (Member, bool) {
	b := spec.Binding
	if b == nil || spec.Scope != ref.Namespace {
		return Member{}, false
	}
	for _, w := range b.Workloads {
		if w.Kind != ref.Kind || w.Name != ref.Name {
			continue
		}
		id := spec.ID()
		m := Member{
			Connection: spec.Name,
			ID:         id,
			Mode:       b.ModeOrDefault(),
			Containers: append([]string(nil), w.Containers...),
			SecretName: connection.SecretName(id),
		}
		if m.Mode == connection.BindingEnv {
			for _, cfg := range spec.Configurations {
				m.Keys = append(m.Keys, spec.RenderedKey(cfg.Name))
			}
			sort.Strings(m.Keys)
		}
		if spec.AuthInfo.AuthType == catalog.AuthWorkloadIdentity && spec.AuthInfo.ClientID != "" {
			m.ServiceAccount = connection.ServiceAccountName(spec.AuthInfo.ClientID)
		}
		if !b.NoRestart {
			m.RestartToken = restartToken
		}
		return m, true
	}
	return Member{}, false
}
