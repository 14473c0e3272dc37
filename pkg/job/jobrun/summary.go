package jobrun

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// Failure is one connection whose work did not finish, as the summary
// line and the connection's status report it.
type Failure struct {
	Connection string
	ObjectID   string
	Step       string
	// Phase the failure left the connection in: Failed (permanent) or
	// Pending (retrying, or parked on its namespace).
	Phase  connection.Phase
	Reason string
	// Sentinel names the error a user can look up (ErrSecretIsOwned), or "".
	Sentinel string
	// Message is one sentence naming the connection, the step and the cause.
	Message string
	// Since is when the connection's current streak of failures began.
	Since time.Time
	// Attempts is the length of that streak.
	Attempts int
	// RetryAfter is when sc-job tries the connection again.
	RetryAfter time.Time
}

// Summary is what a run did. Only Failures and StillPending make a run
// fail: a run's exit status and its self-deletion depend on the work it did,
// never on a connection that was already failing before it started.
type Summary struct {
	Rendered int
	// Unchanged of the Rendered were re-rendered (RenderAll) and found as
	// rendered: nothing was written for them, not even their status.
	Unchanged int
	Deleted   int
	// Failures are connections this run failed permanently, and not in the
	// same way as their standing failure: news a person must act on.
	Failures []Failure
	// Retrying hit an error retrying may fix: Pending, reason Retrying,
	// tried again after their backoff.
	Retrying []Failure
	// Parked wait for their target namespace: Pending, NamespaceNotFound.
	Parked []Failure
	// StillFailing had failed before this run: it either left them alone
	// (their retryAfter is not due) or retried them and they failed the
	// same way. Their status and Events hold the evidence.
	StillFailing []Failure
	// Corrupt records could not be decoded; only a human can fix them, and
	// every run would meet them again, so they do not fail a run.
	Corrupt int
	// Arrived counts connections whose work (a request newer than the
	// run's initial listing) reached the run by its watch and was taken.
	Arrived int
	// Writes counts API writes to rendered objects (creates, updates, deletes).
	Writes int
	// StillPending are connections whose outcome this run could not
	// record (their status write kept failing): due work it left behind.
	StillPending int
	// Deferred became due after MaxRun: left to the next run, which the
	// launcher starts once this Job is gone. They do not fail the run.
	Deferred int
	Duration time.Duration
}

// OK: nothing newly failed and nothing due was left behind.
func (s Summary) OK() bool { return len(s.Failures) == 0 && s.StillPending == 0 }

// Line is the plain sentence `kubectl logs job/sc-job` ends with.
func (s Summary) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sc-job: %d %s rendered, %d deleted, %d failed", s.Rendered, plural(s.Rendered), s.Deleted, len(s.Failures))
	for i, f := range s.Failures {
		b.WriteString(sep(i, ": ", "; "))
		b.WriteString(f.Message)
		if f.Sentinel != "" {
			fmt.Fprintf(&b, " (%s)", f.Sentinel)
		}
	}
	for i, f := range s.Retrying {
		b.WriteString(sep(i, fmt.Sprintf("; %d retrying: ", len(s.Retrying)), "; "))
		fmt.Fprintf(&b, "%s (attempt %d, next at %s)", f.Message, f.Attempts, stamp(f.RetryAfter))
	}
	for i, f := range s.Parked {
		b.WriteString(sep(i, fmt.Sprintf("; %d waiting for their namespace: ", len(s.Parked)), "; "))
		b.WriteString(f.Message)
	}
	for i, f := range s.StillFailing {
		b.WriteString(sep(i, fmt.Sprintf("; %d still failing from earlier runs: ", len(s.StillFailing)), ", "))
		fmt.Fprintf(&b, "%q since %s (%s)", f.Connection, stamp(f.Since), f.Reason)
	}
	if s.Corrupt > 0 {
		fmt.Fprintf(&b, "; %d corrupt connection records skipped (see the log)", s.Corrupt)
	}
	if s.StillPending > 0 {
		fmt.Fprintf(&b, "; %d connections still pending (their outcome could not be recorded)", s.StillPending)
	}
	if s.Arrived > 0 {
		fmt.Fprintf(&b, "; %d arrived while it ran", s.Arrived)
	}
	if s.Deferred > 0 {
		fmt.Fprintf(&b, "; %d left to the next run (max run reached)", s.Deferred)
	}
	if s.Unchanged > 0 {
		fmt.Fprintf(&b, "; %d unchanged, nothing written", s.Unchanged)
	}
	return b.String()
}

func sep(i int, first, next string) string {
	if i == 0 {
		return first
	}
	return next
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func plural(n int) string {
	if n == 1 {
		return "connection"
	}
	return "connections"
}

type outcomeKind int

const (
	outRendered outcomeKind = iota
	outDeleted
	// outFailed: a new permanent failure; it fails the run.
	outFailed
	// outStillFailed: failed permanently again, the same way as before.
	outStillFailed
	outRetrying
	outParked
	// outSkipped: no longer pending, or the record moved on while it was
	// processed (the watch offers the new version).
	outSkipped
)

type result struct {
	kind    outcomeKind
	failure Failure
	writes  int
	// wrote: the run wrote the connection's status (or removed it).
	wrote bool
	// unchanged: re-rendered and found as rendered; nothing written.
	unchanged bool
	// again: the outcome could not be recorded (the record unreadable, the
	// status write failed): the run tries again, Attempts times a version.
	again bool
}

// summary collects results from the worker pool.
type summary struct {
	mu   sync.Mutex
	last map[string]result
	// waiting: connections with a standing failure a listing found not due.
	waiting  map[string]Failure
	attempts map[attemptKey]int
	writes   int
	// wrote counts connections whose status this run wrote.
	wrote    int
	maxTries int
}

// attemptKey is one version of one connection's work: a new request gives
// the connection fresh attempts.
type attemptKey struct {
	id        string
	gen       int64
	requestID string
}

func newSummary() *summary {
	return &summary{last: map[string]result{}, waiting: map[string]Failure{}, attempts: map[attemptKey]int{}, maxTries: 3}
}

func keyOf(c connection.Connection) attemptKey {
	return attemptKey{id: c.Spec.ID(), gen: c.Generation, requestID: c.Status.LastRequestID}
}

func (s *summary) record(c connection.Connection, r result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, ok := s.last[c.Spec.ID()]
	switch {
	case !ok:
		s.last[c.Spec.ID()] = r
	case r.kind == outSkipped && !r.again && !prev.again:
		// A skip adds nothing to the story of an earlier outcome (a version
		// taken again before the watch delivered this run's own write).
	case r.kind == outStillFailed && prev.kind == outFailed:
		// Retried when its backoff ended while the run lasted, and failed
		// the same way: still this run's news.
		r.kind = outFailed
		s.last[c.Spec.ID()] = r
	default:
		s.last[c.Spec.ID()] = r
	}
	s.attempts[keyOf(c)]++
	s.writes += r.writes
	if r.wrote {
		s.wrote++
	}
}

// acted: the run wrote something (an object, a status, a removal). A run
// that only found everything as rendered has nothing to report in an Event.
func (s *summary) acted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes > 0 || s.wrote > 0
}

// givenUp: this version of the connection was already tried maxTries times
// in this run (its status could not be written, say); leave it for the next run.
func (s *summary) givenUp(c connection.Connection) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[keyOf(c)] >= s.maxTries
}

// wait notes a connection a listing left alone; it says whether this is
// the first time this run, so the log notes it once.
func (s *summary) wait(f Failure) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, done := s.last[f.ObjectID]; done {
		return false // this run processed it: its own lines tell the story
	}
	_, seen := s.waiting[f.ObjectID]
	s.waiting[f.ObjectID] = f
	return !seen
}

func (s *summary) finish(d time.Duration) Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Summary{Writes: s.writes, Duration: d}
	ids := make([]string, 0, len(s.last)+len(s.waiting))
	for id := range s.last {
		ids = append(ids, id)
	}
	for id := range s.waiting {
		if _, done := s.last[id]; !done {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		r, done := s.last[id]
		if !done {
			out.StillFailing = append(out.StillFailing, s.waiting[id])
			continue
		}
		if r.again {
			out.StillPending++
		}
		switch r.kind {
		case outRendered:
			out.Rendered++
			if r.unchanged {
				out.Unchanged++
			}
		case outDeleted:
			out.Deleted++
		case outFailed:
			out.Failures = append(out.Failures, r.failure)
		case outStillFailed:
			out.StillFailing = append(out.StillFailing, r.failure)
		case outRetrying:
			out.Retrying = append(out.Retrying, r.failure)
		case outParked:
			out.Parked = append(out.Parked, r.failure)
		}
	}
	return out
}
