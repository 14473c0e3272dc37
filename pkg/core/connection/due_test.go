package connection

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 9; n++ {
		got = append(got, Backoff(RetryBase, n))
	}
	assert.Equal(t, []time.Duration{
		5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 320 * time.Second, 10 * time.Minute, 10 * time.Minute,
	}, got)
	assert.Equal(t, MaxBackoff, Backoff(FailedBase, 1000), "no overflow")
	assert.Equal(t, RetryBase, Backoff(RetryBase, 0))
}

func TestDue(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	later, earlier := now.Add(time.Second), now.Add(-time.Second)
	failure := &Failure{Generation: 3, RequestID: "r3"}
	conn := func(p Phase, retryAfter *time.Time, f *Failure) Connection {
		return Connection{Generation: 3, Status: Status{Phase: p, LastRequestID: "r3", RetryAfter: retryAfter, LastFailure: f}}
	}
	newer := conn(PhasePending, &later, failure)
	newer.Generation = 4
	resent := conn(PhasePending, &later, failure)
	resent.Status.LastRequestID = "r4"
	for name, tc := range map[string]struct {
		c   Connection
		due bool
		at  time.Time
		ok  bool
	}{
		"pending":                       {c: conn(PhasePending, nil, nil), due: true, ok: true},
		"running left by a dead run":    {c: conn(PhaseRunning, nil, nil), due: true, ok: true},
		"succeeded":                     {c: conn(PhaseSucceeded, nil, failure)},
		"retrying, not yet":             {c: conn(PhasePending, &later, failure), at: later, ok: true},
		"retrying, due":                 {c: conn(PhasePending, &earlier, failure), due: true, at: earlier, ok: true},
		"retrying, due exactly now":     {c: conn(PhasePending, &now, failure), due: true, at: now, ok: true},
		"failed, backing off":           {c: conn(PhaseFailed, &later, failure), at: later, ok: true},
		"failed, backoff over":          {c: conn(PhaseFailed, &earlier, failure), due: true, at: earlier, ok: true},
		"failed before retryAfter":      {c: conn(PhaseFailed, nil, nil), due: true, ok: true},
		"new generation beats backoff":  {c: newer, due: true, ok: true},
		"re-sent request beats backoff": {c: resent, due: true, ok: true},
		"woken (retryAfter cleared)":    {c: conn(PhasePending, nil, failure), due: true, ok: true},
		"deleted is never stored":       {c: conn(PhaseDeleted, nil, nil)},
		"unknown phase needs no work":   {c: conn("", nil, nil)},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.due, Due(tc.c, now))
			at, ok := DueAt(tc.c)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.at, at)
		})
	}
}
