package jobrun

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// Failure is one connection that failed, as the summary line and the
// connection's status report it.
type Failure struct {
	Connection string
	ObjectID   string
	Step       string
	Reason     string
	// Sentinel names the error a user can look up (ErrSecretIsOwned), or "".
	Sentinel string
	// Message is one sentence naming the connection, the step and the cause.
	Message string
}

// Summary is what a run did.
type Summary struct {
	Rendered int
	Deleted  int
	Failures []Failure
	// Corrupt records could not be decoded; only a human can fix them.
	Corrupt int
	// Passes is how many times pending work was listed and processed.
	Passes int
	// Writes counts API writes to rendered objects (creates, updates, deletes).
	Writes int
	// StillPending is work left when MaxPasses ended the run.
	StillPending int
	// StillFailed are connections this run did not touch that are still
	// Failed from an earlier run. They fail this run too: a Job that
	// succeeds deletes itself, and with it the evidence a user reads with
	// `kubectl logs job/sc-job` (a retried pod would otherwise find no
	// pending work and erase the failure).
	StillFailed []Failure
	Duration    time.Duration
}

// OK: nothing failed and nothing was left behind.
func (s Summary) OK() bool {
	return len(s.Failures) == 0 && len(s.StillFailed) == 0 && s.Corrupt == 0 && s.StillPending == 0
}

// Line is the plain sentence `kubectl logs job/sc-job` ends with.
func (s Summary) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sc-job: %d %s rendered, %d deleted, %d failed", s.Rendered, plural(s.Rendered), s.Deleted, len(s.Failures))
	for i, f := range s.Failures {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Message)
		if f.Sentinel != "" {
			fmt.Fprintf(&b, " (%s)", f.Sentinel)
		}
	}
	for i, f := range s.StillFailed {
		if i == 0 {
			fmt.Fprintf(&b, "; %d still failing from an earlier run: ", len(s.StillFailed))
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Message)
	}
	if s.Corrupt > 0 {
		fmt.Fprintf(&b, "; %d corrupt connection records skipped (see the log)", s.Corrupt)
	}
	if s.StillPending > 0 {
		fmt.Fprintf(&b, "; %d connections still pending after %d passes", s.StillPending, s.Passes)
	}
	return b.String()
}

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
	outFailed
	// outSkipped: the record moved on while it was processed; the next
	// pass sees the new state.
	outSkipped
)

type result struct {
	kind    outcomeKind
	failure Failure
	writes  int
}

// summary collects results from the worker pool.
type summary struct {
	mu       sync.Mutex
	last     map[string]result
	attempts map[attemptKey]int
	writes   int
	corruptN int
	Passes   int
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
	return &summary{last: map[string]result{}, attempts: map[attemptKey]int{}, maxTries: 3}
}

func keyOf(c connection.Connection) attemptKey {
	return attemptKey{id: c.Spec.ID(), gen: c.Generation, requestID: c.Status.LastRequestID}
}

func (s *summary) record(c connection.Connection, r result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last[c.Spec.ID()] = r
	s.attempts[keyOf(c)]++
	s.writes += r.writes
}

// givenUp: this version of the connection was already tried maxTries times
// in this run (its status could not be written, say); leave it for the next run.
func (s *summary) givenUp(c connection.Connection) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[keyOf(c)] >= s.maxTries
}

func (s *summary) corrupt(err error) {
	n := 1
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) {
		n = len(multi.Unwrap())
	}
	s.mu.Lock()
	s.corruptN = n
	s.mu.Unlock()
}

func (s *summary) finish(d time.Duration) Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Summary{Passes: s.Passes, Writes: s.writes, Corrupt: s.corruptN, Duration: d}
	ids := make([]string, 0, len(s.last))
	for id := range s.last {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		switch r := s.last[id]; r.kind {
		case outRendered:
			out.Rendered++
		case outDeleted:
			out.Deleted++
		case outFailed:
			out.Failures = append(out.Failures, r.failure)
		}
	}
	return out
}

// stillFailed lists the Failed connections of all that this run did not
// process, with the reason their status already gives.
func stillFailed(all []connection.Connection, processed map[string]bool) []Failure {
	var out []Failure
	for _, c := range all {
		if c.Status.Phase != connection.PhaseFailed || processed[c.Spec.ID()] {
			continue
		}
		msg := c.Status.Message
		if msg == "" {
			msg = fmt.Sprintf("connection %q failed: %s", c.Spec.Name, c.Status.Reason)
		}
		out = append(out, Failure{Connection: c.Spec.Name, ObjectID: c.Spec.ID(), Reason: c.Status.Reason, Message: msg})
	}
	return out
}

// processed is the set of object ids this run produced a result for.
func (s *summary) processed() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.last))
	for id := range s.last {
		out[id] = true
	}
	return out
}
