package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPercentileIsNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, percentile(ds, 50))
	assert.Equal(t, 99*time.Millisecond, percentile(ds, 99))
	assert.Equal(t, 100*time.Millisecond, percentile(ds, 100))
	assert.Equal(t, time.Millisecond, percentile(ds[:1], 99))
	assert.Zero(t, percentile(nil, 99))
}

// at builds a request sent off after t0 and ending lat later.
func at(t0 time.Time, off, lat time.Duration) sent {
	start := t0.Add(off)
	return sent{start: start, acked: start, final: start.Add(lat)}
}

func TestRecoveryFindsTheFirstSuccessAndTheLastSlowWindow(t *testing.T) {
	kill := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	reqs := []sent{
		at(kill, -3*time.Second, 20*time.Millisecond),          // before the kill: not part of recovery
		at(kill, -200*time.Millisecond, 4*time.Second),         // in flight at the kill, ends 3.8 s after it
		at(kill, 500*time.Millisecond, 3*time.Second),          // window 0: slow; ends 3.5 s after the kill
		at(kill, 1500*time.Millisecond, 2500*time.Millisecond), // window 1: slow
		at(kill, 2500*time.Millisecond, 30*time.Millisecond),   // window 2: fast
		at(kill, 6200*time.Millisecond, 900*time.Millisecond),  // window 6: slow again
		at(kill, 8*time.Second, 20*time.Millisecond),
	}
	r := recoveryOf(reqs, kill, 40*time.Millisecond)
	assert.Equal(t, 140*time.Millisecond, r.threshold, "2x 40 ms is below 40 ms + 100 ms")
	assert.Equal(t, 2530*time.Millisecond, r.firstSuccess, "the fast request of window 2 ends first")
	assert.Equal(t, 7*time.Second, r.p99Back, "window 6 is the last slow one")
	assert.Equal(t, 4*time.Second, r.worst)
}

func TestRecoveryWhenOnlyRequestsInFlightAtTheKillWereSlow(t *testing.T) {
	kill := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	reqs := []sent{
		at(kill, -time.Second, 3*time.Second),
		at(kill, time.Second, 10*time.Millisecond),
	}
	r := recoveryOf(reqs, kill, 10*time.Millisecond)
	assert.Equal(t, 2*time.Second, r.p99Back, "back when the last slow in-flight request ended")
}

func TestTimelineBucketsBySendTimeAroundTheKill(t *testing.T) {
	kill := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	rows := timeline([]sent{
		at(kill, -time.Second, 10*time.Millisecond),
		at(kill, time.Second, 20*time.Millisecond),
		at(kill, 2*time.Second, 40*time.Millisecond),
		{start: kill.Add(3 * time.Second)}, // no final: not in any bucket
	}, kill, 5*time.Second)
	if assert.Len(t, rows, 2) {
		assert.Equal(t, timelineRow{label: "-5 to +0", n: 1, p50: 10 * time.Millisecond, p99: 10 * time.Millisecond}, rows[0])
		assert.Equal(t, timelineRow{label: "+0 to +5", n: 2, p50: 20 * time.Millisecond, p99: 40 * time.Millisecond}, rows[1])
	}
}

func TestReportNamesLostAndDuplicated(t *testing.T) {
	r := &report{cfg: config{Clusters: 2, Servers: "scctl"}, started: time.Now(), finished: time.Now(),
		totals: totals{sent: 3, acked: 3, lost: 1, duplicated: 0}}
	md := r.markdown()
	assert.Contains(t, md, "| **lost** (stored, never applied) | **1** |")
	assert.Contains(t, md, "| **duplicated** (applied more than once) | **0** |")
	assert.True(t, strings.HasPrefix(md, "# Fleet bench\n"))
}
