// Package launcher keeps at most one Job sc-job in the agent's namespace
// while connection work is due (connection.Due). It starts sc-job when a
// record is due and none runs, and requeues itself for the earliest
// retryAfter of the connections that back off or are parked, so that a
// waiting connection never starts a run that would find nothing to do. It
// leaves a failed sc-job in place for `kubectl logs` until the due work
// changes or keepFailedFor has passed, and then replaces it; sc-job itself
// deletes its Job when it succeeds. A running sc-job that another release or
// configuration of the agent built (its template hash is not ours) is
// deleted as soon as the launcher sees it, and replaced if work is due, so a
// warm run of the previous release does not keep taking work after an
// upgrade. It also wakes (store.Wake) connections parked on a missing
// namespace as soon as that namespace exists.
package launcher
