// Package controller is the one workqueue worker the agent's controllers
// (launcher, drift, statuswatch) share, written the way sample-controller
// writes it: a typed rate-limited queue, N workers until the context ends,
// Done on every key, Forget on success (which resets the key's backoff),
// AddRateLimited on failure. Optimistic-concurrency conflicts and ErrRequeue
// are expected and retried without an error log. Controllers keep only their
// event handlers and their sync function. Each queue is named after its
// controller, which labels client-go's workqueue_* metrics.
package controller
