package intake

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// The line between "end the request now" and "retry it" is the API
// server's answer; wrapping by the store (%w) must not hide it.
func TestPermanentReason(t *testing.T) {
	cm := schema.GroupResource{Resource: "configmaps"}
	wrap := func(err error) error { return fmt.Errorf("store connection x: %w", err) }
	in := &Intake{o: Options{IsPermanent: func(err error) bool { return errors.Is(err, errOwnedElsewhere) }}}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"corrupt record", wrap(fmt.Errorf("decode: %w", record.ErrCorrupt)), ReasonRecordCorrupt},
		{"newer record", wrap(fmt.Errorf("decode: %w", record.ErrUnsupportedVersion)), ReasonUnsupportedVersion},
		{"newer record via store", wrap(store.ErrUnsupportedVersion), ReasonUnsupportedVersion},
		{"quota", wrap(apierrors.NewForbidden(cm, "x", errors.New("exceeded quota"))), ReasonForbidden},
		{"invalid", wrap(apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, "x", nil)), ReasonInvalid},
		{"too large", wrap(apierrors.NewRequestEntityTooLargeError("limit is 1MiB")), ReasonTooLarge},
		{"webhook bad request", wrap(apierrors.NewBadRequest("denied")), ReasonRejected},
		{"namespace missing", wrap(apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "sc-system")), ReasonRejected},
		{"store's own", wrap(errOwnedElsewhere), ReasonRejected},
		{"conflict", wrap(apierrors.NewConflict(cm, "x", errors.New("modified"))), ""},
		{"already exists", wrap(apierrors.NewAlreadyExists(cm, "x")), ""},
		{"throttled", wrap(apierrors.NewTooManyRequests("slow down", 1)), ""},
		{"server error", wrap(apierrors.NewInternalError(errors.New("etcdserver: leader changed"))), ""},
		{"unavailable", wrap(apierrors.NewServiceUnavailable("webhook timeout")), ""},
		{"server timeout", wrap(apierrors.NewTimeoutError("took too long", 1)), ""},
		{"deadline", wrap(context.DeadlineExceeded), ""},
		{"credentials being rewritten", wrap(store.ErrCredentialsStale), ""},
		{"network", wrap(errors.New("dial tcp 10.0.0.1:443: connection refused")), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, in.permanentReason(tt.err))
		})
	}
}

var errOwnedElsewhere = errors.New("object owned by another field manager")
