package apply

import (
	"errors"
	"fmt"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// Errors retrying cannot fix: a person must act (Permanent reports them).
// ErrNamespaceMissing also covers a namespace being deleted; sc-job parks
// such a connection instead of failing it.
var (
	ErrSecretIsOwned              = errors.New("Secret is not managed by sc-extension")
	ErrServiceAccountIsOwned      = errors.New("ServiceAccount is not managed by sc-extension")
	ErrSecretProviderClassIsOwned = errors.New("SecretProviderClass is not managed by sc-extension")
	ErrCSIDriverMissing           = errors.New("the Secret Store CSI driver is not installed")
	ErrNamespaceMissing           = errors.New("target namespace does not exist")
)

// Steps name what was being done when an error happened; sc-job's summary
// and the connection's status message quote them.
const (
	StepCheckNamespace      = "check-namespace"
	StepApplySecret         = "apply-secret"
	StepApplyServiceAccount = "apply-serviceaccount"
	StepApplySPC            = "apply-secretproviderclass"
	StepDeleteSecret        = "delete-secret"
	StepDeleteSA            = "delete-serviceaccount"
	StepDeleteSPC           = "delete-secretproviderclass"
)

// StepError says at which step and on which object an apply failed.
type StepError struct {
	Step string
	Ref  connection.ResourceRef
	Err  error
}

func (e *StepError) Error() string { return e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

func stepErr(step string, ref connection.ResourceRef, err error) error {
	if err == nil {
		return nil
	}
	return &StepError{Step: step, Ref: ref, Err: err}
}

// ownedError reads as one sentence naming the object and why it was not
// touched, and matches its sentinel.
type ownedError struct {
	ref      connection.ResourceRef
	why      string
	sentinel error
}

func (e *ownedError) Error() string {
	return fmt.Sprintf("%s %s/%s %s", e.ref.Kind, e.ref.Namespace, e.ref.Name, e.why)
}
func (e *ownedError) Unwrap() error { return e.sentinel }

func ownedSentinel(kind string) error {
	switch kind {
	case render.KindServiceAccount:
		return ErrServiceAccountIsOwned
	case render.KindSecretProviderClass:
		return ErrSecretProviderClassIsOwned
	default:
		return ErrSecretIsOwned
	}
}
