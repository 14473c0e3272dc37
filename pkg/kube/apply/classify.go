package apply

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// refusals are sc-extension's own errors that no retry can fix: a person
// must delete or relabel an object, install a driver, create a namespace
// or fix a record.
var refusals = []error{
	ErrSecretIsOwned, ErrServiceAccountIsOwned, ErrSecretProviderClassIsOwned,
	ErrCSIDriverMissing, ErrNamespaceMissing,
	render.ErrMissingCredential, render.ErrIncomplete,
	connection.ErrInvalid, record.ErrCorrupt,
}

// Permanent reports whether err is one that retrying the same call cannot
// fix: the refusals above, and API answers that judge the request itself
// (Forbidden, Invalid, BadRequest, Unauthorized, NotFound, unsupported
// method or media type, too large, a kind with no CRD). nil is not.
func Permanent(err error) bool { return err != nil && !Transient(err) }

// Transient reports whether the same call may succeed later without anyone
// acting: throttling (429), server errors (5xx, incl. a webhook that timed
// out), server or client timeouts, a dropped or refused connection, a
// conflict or AlreadyExists that outlived its re-read retries, and any error
// this function does not recognise. Unknown errors count as transient on
// purpose: a controller that gives up on an error it does not understand
// stops converging, while one that retries with a capped backoff stays
// visible (Pending, reason Retrying, the error in its message) and recovers
// when the cause goes away.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	for _, r := range refusals {
		if errors.Is(err, r) {
			return false
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err), apierrors.IsUnexpectedServerError(err),
		apierrors.IsConflict(err), apierrors.IsAlreadyExists(err), apierrors.IsGone(err), apierrors.IsResourceExpired(err):
		return true
	case apierrors.IsForbidden(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsUnauthorized(err),
		apierrors.IsNotFound(err), apierrors.IsMethodNotSupported(err), apierrors.IsNotAcceptable(err),
		apierrors.IsUnsupportedMediaType(err), apierrors.IsRequestEntityTooLargeError(err), meta.IsNoMatchError(err):
		return false
	case utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err), utilnet.IsHTTP2ConnectionLost(err):
		return true
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		// A status this version does not name: 5xx is the server's
		// trouble, any other code judged the request.
		return status.Status().Code >= 500
	}
	return true // network trouble between us and the API server, and the unknown
}

// refused reports whether err is one of sc-extension's own refusals, which
// already name the object.
func refused(err error) bool {
	for _, r := range refusals {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// namespaceGone tells a write that failed because its namespace was deleted
// (NotFound naming the namespace) or is being deleted (Forbidden with the
// NamespaceTerminating cause) from other refusals, so a namespace that goes
// away mid-run parks the connection like one that was missing from the start.
func namespaceGone(err error) bool {
	if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		return true
	}
	var status apierrors.APIStatus
	if apierrors.IsNotFound(err) && errors.As(err, &status) {
		d := status.Status().Details
		return d != nil && d.Kind == "namespaces"
	}
	return false
}
