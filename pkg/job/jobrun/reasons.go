package jobrun

import (
	"errors"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// Status reasons a run writes (connection.Status.Reason, Event reasons).
const (
	// ReasonRunning and ReasonRenderAll are no longer written: a run reads
	// a record fresh instead of claiming it Running, and --render-all no
	// longer marks every record Pending. Records (and Events) of earlier
	// releases carry them; Running stays due (connection.Due).
	ReasonRunning                  = "Running"
	ReasonRendered                 = "Rendered"
	ReasonDeleted                  = "Deleted"
	ReasonSecretIsOwned            = "SecretIsOwned"
	ReasonServiceAccountIsOwned    = "ServiceAccountIsOwned"
	ReasonSecretProviderClassOwned = "SecretProviderClassIsOwned"
	ReasonNamespaceNotFound        = connection.ReasonNamespaceNotFound
	ReasonRetrying                 = connection.ReasonRetrying
	ReasonCSIDriverMissing         = "CSIDriverMissing"
	ReasonCredentialsStale         = "CredentialsStale"
	ReasonRenderFailed             = "RenderFailed"
	ReasonApplyFailed              = "ApplyFailed"
	ReasonDeleteFailed             = "DeleteFailed"
	ReasonRenderAll                = "RenderAll"
	// ReasonWorkloadNotFound: a workload the binding names is missing; the
	// connection is retried until it appears.
	ReasonWorkloadNotFound = connection.ReasonWorkloadNotFound
	// ReasonBindingRefused: the binding cannot be applied as asked (a
	// container that is not there, another ServiceAccount, a conflicting
	// env var, a key that is no env var name); a person must act.
	ReasonBindingRefused = "BindingRefused"
	// ReasonRestarted (Normal Event): workloads rolled for new Secret data.
	ReasonRestarted = "Restarted"
)

// Reasons of the run's summary Event, on its Job.
const (
	ReasonRunCompleted = "RunCompleted"
	ReasonRunFailed    = "RunFailed"
)

// classify maps an error to its status reason and the sentinel's name that
// the summary line quotes, so a user can search the docs for it.
func classify(err error, deleting bool) (reason, sentinel string) {
	switch {
	case errors.Is(err, apply.ErrSecretIsOwned):
		return ReasonSecretIsOwned, "ErrSecretIsOwned"
	case errors.Is(err, apply.ErrServiceAccountIsOwned):
		return ReasonServiceAccountIsOwned, "ErrServiceAccountIsOwned"
	case errors.Is(err, apply.ErrSecretProviderClassIsOwned):
		return ReasonSecretProviderClassOwned, "ErrSecretProviderClassIsOwned"
	case errors.Is(err, apply.ErrNamespaceMissing):
		return ReasonNamespaceNotFound, "ErrNamespaceMissing"
	case errors.Is(err, namespaces.ErrNotAllowed):
		return ReasonNamespaceDenied, "ErrNotAllowed"
	case errors.Is(err, apply.ErrCSIDriverMissing):
		return ReasonCSIDriverMissing, "ErrCSIDriverMissing"
	case errors.Is(err, store.ErrCredentialsStale):
		return ReasonCredentialsStale, "ErrCredentialsStale"
	case errors.Is(err, render.ErrMissingCredential):
		return ReasonRenderFailed, "ErrMissingCredential"
	case errors.Is(err, render.ErrIncomplete):
		return ReasonRenderFailed, "ErrIncomplete"
	case errors.Is(err, bind.ErrWorkloadNotFound):
		return ReasonWorkloadNotFound, "ErrWorkloadNotFound"
	case errors.Is(err, bind.ErrContainerNotFound):
		return ReasonBindingRefused, "ErrContainerNotFound"
	case errors.Is(err, bind.ErrServiceAccountConflict):
		return ReasonBindingRefused, "ErrServiceAccountConflict"
	case errors.Is(err, bind.ErrBindingConflict):
		return ReasonBindingRefused, "ErrBindingConflict"
	case errors.Is(err, bind.ErrInvalidEnvName):
		return ReasonBindingRefused, "ErrInvalidEnvName"
	case deleting:
		return ReasonDeleteFailed, ""
	default:
		return ReasonApplyFailed, ""
	}
}

// permanent errors make the connection Failed (a person must act); every
// other error keeps it Pending with reason Retrying and a backoff. See
// apply.Transient for the split; a namespace the policy refuses is sc-job's
// own refusal, which only a person (or a new policy) can lift.
func permanent(err error) bool {
	if errors.Is(err, bind.ErrWorkloadNotFound) {
		return false
	}
	return errors.Is(err, namespaces.ErrNotAllowed) || apply.Permanent(err) || bind.Permanent(err)
}

// parks: the target namespace is missing or being deleted. A render waits
// for it (Pending, NamespaceNotFound) instead of failing; a deletion does
// not care, its objects went with the namespace.
func parks(err error, deleting bool) bool {
	return !deleting && errors.Is(err, apply.ErrNamespaceMissing)
}
