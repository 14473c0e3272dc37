// Package lifecycle is the agent process's skeleton: in which order its
// parts start and stop, what stops it, and how what it needs at start is
// retried. It knows nothing of NATS subjects, records or Jobs; agent/ hands
// it functions and it decides only when each runs and when it ends.
//
// The order it guarantees, on SIGTERM or on a fatal error:
//
//  1. the leader's intake stops and is waited for, so a request being
//     applied is acked or NAKed, never dropped half-way (Term);
//  2. the leader's controllers and then their informers stop (Term);
//  3. the Lease is released (the caller's leader.Run returns);
//  4. background services stop in the reverse order they were started:
//     queries, then NATS is drained, then the probes (Process).
package lifecycle
