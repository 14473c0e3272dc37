package bind

import (
	"errors"

	"github.com/sc-extension/sc-extension/pkg/kube/apply"
)

// The refusals callers branch on. Each error Reconcile returns names the
// workload, the field and the reason, and never a credential: bindings hold
// Secret references, not values.
var (
	// ErrWorkloadNotFound: the workload does not exist (yet). Not
	// permanent: sc-job retries with its backoff and binds it when it
	// appears.
	ErrWorkloadNotFound = errors.New("workload not found")
	// ErrContainerNotFound: a member names a container the pod template
	// does not have.
	ErrContainerNotFound = errors.New("container not found in the pod template")
	// ErrServiceAccountConflict: the pod template runs as a ServiceAccount
	// someone else set, or two members need different ServiceAccounts.
	ErrServiceAccountConflict = errors.New("serviceAccountName conflict")
	// ErrBindingConflict: a field we would set is another manager's with
	// another value (a user's env var of the same name, say), or two
	// members want the same env var. Never forced.
	ErrBindingConflict = errors.New("binding conflicts with the workload")
	// ErrInvalidEnvName: a rendered key cannot be an environment variable
	// name (env mode).
	ErrInvalidEnvName = errors.New("key is not a valid environment variable name")
)

// errUnknownKind: validation refuses such a spec before it is stored.
var errUnknownKind = errors.New("workload kind cannot be bound")

var refusals = []error{ErrContainerNotFound, ErrServiceAccountConflict, ErrBindingConflict, ErrInvalidEnvName, errUnknownKind}

// Permanent reports whether retrying cannot fix err: our refusals (a person
// must change the workload or the connection) and API answers that judge
// the request (apply.Permanent). ErrWorkloadNotFound is not: the workload
// may yet be created.
func Permanent(err error) bool {
	if err == nil || errors.Is(err, ErrWorkloadNotFound) {
		return false
	}
	for _, r := range refusals {
		if errors.Is(err, r) {
			return true
		}
	}
	return apply.Permanent(err)
}

// refusal blames one member for err: Reconcile leaves that member out and
// applies the others.
type refusal struct {
	id  string
	err error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(m Member, err error) error { return &refusal{id: m.ID, err: err} }
