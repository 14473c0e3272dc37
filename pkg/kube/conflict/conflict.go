// Package conflict retries Kubernetes writes that lost an optimistic-
// concurrency race. It exists because client-go's retry.OnError (and so
// RetryOnConflict) returns nil when fn fails with a context error: it takes
// context.Canceled for its own interruption and reports the last retriable
// error, which is nil on a first attempt. A caller then believes a write
// happened that never did (seen in the e2e suite: an agent shutting down
// acked a request it had not stored).
package conflict

import (
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

// Retry runs fn until it succeeds, fails with an error retriable does not
// accept, or backoff is exhausted; it returns nil only if fn succeeded.
func Retry(backoff wait.Backoff, retriable func(error) bool, fn func() error) error {
	var last error
	err := retry.OnError(backoff, retriable, func() error {
		last = fn()
		return last
	})
	if err == nil && last != nil {
		return last
	}
	return err
}
