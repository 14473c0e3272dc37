package connection

import "time"

// Status reasons shared by sc-job (which writes them) and the agent and
// scctl (which act on them or show them).
const (
	// ReasonRetrying: a transient error (API throttling, 5xx, timeout);
	// the connection stays Pending and is retried after Status.RetryAfter.
	ReasonRetrying = "Retrying"
	// ReasonNamespaceNotFound: the target namespace is missing or
	// terminating; the connection is parked Pending until it exists.
	ReasonNamespaceNotFound = "NamespaceNotFound"
)

// Backoff policy, per connection (n = Status.Attempts after the failure):
//
//	Retrying (transient):      min(5s  * 2^(n-1), 10m)
//	Failed (permanent):        min(1m  * 2^(n-1), 10m)
//	NamespaceNotFound (parked): 10m (the agent wakes it when the namespace appears)
const (
	RetryBase   = 5 * time.Second
	FailedBase  = time.Minute
	ParkedDelay = 10 * time.Minute
	MaxBackoff  = 10 * time.Minute
)

// Backoff is base doubled per attempt after the first, capped at MaxBackoff.
func Backoff(base time.Duration, attempts int) time.Duration {
	d := base
	for i := 1; i < attempts && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

// DueAt says when sc-job should next process c. ok is false when c needs
// nothing until something changes it (Succeeded, or not a known phase);
// otherwise c is due from at on (the zero time: due now).
//
// Pending and Running (a run that died mid-way) are due unless a backoff
// holds them; Failed is due when its slow backoff ends. New work, i.e. a
// generation or request other than the one that last failed, is due at once
// whatever the backoff, and so is a connection whose RetryAfter was cleared
// (store.Wake).
func DueAt(c Connection) (at time.Time, ok bool) {
	switch c.Status.Phase {
	case PhasePending, PhaseRunning, PhaseFailed:
	default:
		return time.Time{}, false
	}
	switch {
	case c.Status.RetryAfter == nil:
		return time.Time{}, true
	case c.Status.Reason == ReasonRestartScheduled:
		// A scheduled restart keeps its time whatever an older failure
		// says; a new request ends it (pkg/kube/store clears RetryAfter).
		return *c.Status.RetryAfter, true
	case newWork(c):
		return time.Time{}, true
	}
	return *c.Status.RetryAfter, true
}

// Due reports whether sc-job should process c at now. The agent's launcher
// uses it to decide whether to start sc-job and, with DueAt, when to look again.
func Due(c Connection, now time.Time) bool {
	at, ok := DueAt(c)
	return ok && !now.Before(at)
}

// newWork: c is not the work its last failure was about.
func newWork(c Connection) bool {
	f := c.Status.LastFailure
	return f != nil && (f.Generation != c.Generation || f.RequestID != c.Status.LastRequestID)
}
