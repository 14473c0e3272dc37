package intake

import (
	"errors"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// permanentReason is the reason a store error ends its request at once, or
// "" when retrying may help. The line is the API server's: a 4xx answer
// says the request itself cannot be stored as it is (a quota, a webhook,
// RBAC, an invalid object) and asking again will get the same answer,
// except for 409 (a write raced ours; the store re-reads on its own and a
// leftover conflict clears) and 429 / 408 (too many requests, a timeout).
// Everything else (5xx, timeouts, network errors, etcd leader changes, a
// credential Secret being rewritten) is transient.
func (in *Intake) permanentReason(err error) string {
	switch {
	case errors.Is(err, record.ErrCorrupt):
		return ReasonRecordCorrupt
	case errors.Is(err, record.ErrUnsupportedVersion):
		// A newer release wrote the record; this agent may not touch it
		// until that release runs again, so retrying cannot help.
		return ReasonUnsupportedVersion
	case in.o.IsPermanent(err):
		return ReasonRejected
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return ""
	}
	code := int(status.Status().Code)
	switch {
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err), apierrors.IsTooManyRequests(err),
		code == http.StatusConflict, code == http.StatusTooManyRequests, code == http.StatusRequestTimeout:
		return ""
	case apierrors.IsForbidden(err):
		return ReasonForbidden
	case apierrors.IsInvalid(err):
		return ReasonInvalid
	case apierrors.IsRequestEntityTooLargeError(err):
		return ReasonTooLarge
	case code >= 400 && code < 500:
		return ReasonRejected
	}
	return ""
}
