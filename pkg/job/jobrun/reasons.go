package jobrun

import (
	"errors"

	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// Status reasons a run writes (connection.Status.Reason, Event reasons).
const (
	ReasonRunning                  = "Running"
	ReasonRendered                 = "Rendered"
	ReasonDeleted                  = "Deleted"
	ReasonSecretIsOwned            = "SecretIsOwned"
	ReasonServiceAccountIsOwned    = "ServiceAccountIsOwned"
	ReasonSecretProviderClassOwned = "SecretProviderClassIsOwned"
	ReasonNamespaceNotFound        = "NamespaceNotFound"
	ReasonCSIDriverMissing         = "CSIDriverMissing"
	ReasonCredentialsStale         = "CredentialsStale"
	ReasonRenderFailed             = "RenderFailed"
	ReasonApplyFailed              = "ApplyFailed"
	ReasonDeleteFailed             = "DeleteFailed"
	ReasonRenderAll                = "RenderAll"
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
	case errors.Is(err, apply.ErrCSIDriverMissing):
		return ReasonCSIDriverMissing, "ErrCSIDriverMissing"
	case errors.Is(err, store.ErrCredentialsStale):
		return ReasonCredentialsStale, "ErrCredentialsStale"
	case errors.Is(err, render.ErrMissingCredential):
		return ReasonRenderFailed, "ErrMissingCredential"
	case errors.Is(err, render.ErrIncomplete):
		return ReasonRenderFailed, "ErrIncomplete"
	case deleting:
		return ReasonDeleteFailed, ""
	default:
		return ReasonApplyFailed, ""
	}
}

// permanent errors fail the connection at once; others are retried a few
// times within the run first.
func permanent(err error) bool {
	return apply.Permanent(err) || errors.Is(err, render.ErrMissingCredential) || errors.Is(err, render.ErrIncomplete)
}
