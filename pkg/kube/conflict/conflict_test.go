package conflict

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

var fast = wait.Backoff{Steps: 3, Duration: time.Millisecond}

func conflictErr() error {
	return apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "x", errors.New("stale"))
}

// The reason this package exists: client-go loses a context error.
func TestContextErrorIsNeverSwallowed(t *testing.T) {
	fn := func() error { return context.Canceled }
	assert.NoError(t, retry.OnError(fast, apierrors.IsConflict, fn), "client-go's behaviour this package guards against")
	assert.ErrorIs(t, Retry(fast, apierrors.IsConflict, fn), context.Canceled)
}

func TestConflictsAreRetriedThenSucceed(t *testing.T) {
	calls := 0
	err := Retry(fast, apierrors.IsConflict, func() error {
		calls++
		if calls < 3 {
			return conflictErr()
		}
		return nil
	})
	assert.NoError(t, err)
	assert.Equal(t, 3, calls)
}

func TestExhaustedConflictsReturnTheConflict(t *testing.T) {
	err := Retry(fast, apierrors.IsConflict, conflictErr)
	assert.True(t, apierrors.IsConflict(err), "%v", err)
}

func TestOtherErrorsStopAtOnce(t *testing.T) {
	calls := 0
	boom := errors.New("boom")
	err := Retry(fast, apierrors.IsConflict, func() error { calls++; return boom })
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, 1, calls)
}
