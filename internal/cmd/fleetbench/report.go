package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report gathers every figure of a run.
type report struct {
	cfg       config
	started   time.Time
	finished  time.Time
	loadStart string // /proc/loadavg: other work on the machine
	loadEnd   string
	serversUp time.Duration
	added     time.Duration
	agentsUp  time.Duration
	idle      []usage
	phases    []phaseResult
	totals    totals
	queries   []queryResult
	err       error
}

// percentile of sorted durations (nearest rank); 0 when empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// latencies are the request → final status times of reqs that ended,
// sorted.
func latencies(reqs []sent) []time.Duration {
	var out []time.Duration
	for _, s := range reqs {
		if !s.final.IsZero() && !s.start.IsZero() {
			out = append(out, s.latency())
		}
	}
	slices.Sort(out)
	return out
}

// lastFinal is when the last request of p ended, from p's start.
func lastFinal(p phaseResult) time.Duration {
	var last time.Time
	for _, s := range p.reqs {
		if s.final.After(last) {
			last = s.final
		}
	}
	if last.IsZero() {
		return 0
	}
	return last.Sub(p.start)
}

// storedLatencies are the publish → stream ack times, sorted.
func storedLatencies(reqs []sent) []time.Duration {
	var out []time.Duration
	for _, s := range reqs {
		if !s.acked.IsZero() && !s.start.IsZero() {
			out = append(out, s.acked.Sub(s.start))
		}
	}
	slices.Sort(out)
	return out
}

// recovery is how the kill phase got back to normal.
type recovery struct {
	firstSuccess time.Duration // kill → the first final status of a request sent after the kill
	p99Back      time.Duration // kill → the end of the last 1 s window (by send time) whose p99 was above the threshold
	threshold    time.Duration
	worst        time.Duration // the slowest request of the phase
}

// recoveryOf judges reqs against the steady phase's p99: a window is slow
// when its p99 is above twice that (and at least 100 ms above it, so that
// a few milliseconds of noise on a fast baseline do not count).
func recoveryOf(reqs []sent, killAt time.Time, baselineP99 time.Duration) recovery {
	r := recovery{threshold: max(2*baselineP99, baselineP99+100*time.Millisecond)}
	windows := map[int][]time.Duration{}
	for _, s := range reqs {
		if s.final.IsZero() || s.start.IsZero() {
			continue
		}
		r.worst = max(r.worst, s.latency())
		if s.start.Before(killAt) {
			// Sent before the kill and finished after it: its wait counts
			// in the window it was sent in.
			if s.final.After(killAt) {
				windows[-1] = append(windows[-1], s.latency())
			}
			continue
		}
		if d := s.final.Sub(killAt); r.firstSuccess == 0 || d < r.firstSuccess {
			r.firstSuccess = d
		}
		w := int(s.start.Sub(killAt) / time.Second)
		windows[w] = append(windows[w], s.latency())
	}
	last := -2
	for w, ls := range windows {
		slices.Sort(ls)
		if percentile(ls, 99) > r.threshold && w > last {
			last = w
		}
	}
	switch {
	case last == -1:
		// Only requests in flight at the kill were slow: back as soon as
		// the slowest of them finished.
		for _, s := range reqs {
			if s.start.Before(killAt) && s.final.After(killAt) && s.latency() > r.threshold {
				r.p99Back = max(r.p99Back, s.final.Sub(killAt))
			}
		}
	case last >= 0:
		r.p99Back = time.Duration(last+1) * time.Second
	}
	return r
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

func (r *report) markdown() string {
	var b strings.Builder
	c := r.cfg
	fmt.Fprintf(&b, "# Fleet bench\n\n")
	fmt.Fprintf(&b, "%s, %d CPUs, %s; %d simulated clusters against a 3-node JetStream cluster (%s server processes, R%d streams, %s authentication), all on 127.0.0.1.\n",
		r.started.UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.Version(), c.Clusters, c.Servers, replicas, c.Auth)
	fmt.Fprintf(&b, "Flags: -clusters %d -rate %g -duration %s -burst %d -kill-duration %s -kill-at %s -restart-after %s -query-rate %g -heartbeat %s -seed %d. Run took %s.\n\n",
		c.Clusters, c.Rate, c.Duration, c.Burst, c.KillDuration, c.KillAt, c.RestartAfter, c.QueryRate, c.Heartbeat, c.Seed,
		r.finished.Sub(r.started).Round(time.Second))
	if r.loadStart != "" {
		fmt.Fprintf(&b, "Load average (1, 5, 15 min) at the start %s, at the end %s.\n\n", r.loadStart, r.loadEnd)
	}
	fmt.Fprintf(&b, "Setup: servers up with streams and %d consumers in %s", c.Clusters, r.serversUp.Round(100*time.Millisecond))
	if r.added > 0 {
		fmt.Fprintf(&b, " (of which the %d clusters added while the servers ran, consumer then user as `scctl cluster add` does, 16 at a time: %s)",
			c.Clusters, r.added.Round(100*time.Millisecond))
	}
	fmt.Fprintf(&b, "; %d agents connected, consuming and answering a pubkey query in %s.\n\n", c.Clusters, r.agentsUp.Round(100*time.Millisecond))

	var steadyP99 time.Duration
	fmt.Fprintf(&b, "## Request → final status\n\nFrom the first publish attempt to the first terminal status event the control plane's watcher receives; \"stored\" is the publish alone (the stream's ack, retries included).\n\n")
	fmt.Fprintf(&b, "| phase | requests | final | p50 | p90 | p99 | max | stored p50 / p99 | last final after the phase's start |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.phases {
		ls := latencies(p.reqs)
		if p.name == phaseSteady {
			steadyP99 = percentile(ls, 99)
		}
		st := storedLatencies(p.reqs)
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s | %s / %s | %s |\n", p.name, len(p.reqs), len(ls),
			ms(percentile(ls, 50)), ms(percentile(ls, 90)), ms(percentile(ls, 99)), ms(percentile(ls, 100)),
			ms(percentile(st, 50)), ms(percentile(st, 99)), lastFinal(p).Round(100*time.Millisecond))
	}
	if qs := r.queries; len(qs) > 0 {
		var ds []time.Duration
		errs := 0
		for _, q := range qs {
			if q.err != nil {
				errs++
				continue
			}
			ds = append(ds, q.d)
		}
		slices.Sort(ds)
		fmt.Fprintf(&b, "\nQueries during the steady phase (show and list, request/reply to the agent): %d, %d failed, p50 %s, p99 %s.\n",
			len(qs), errs, ms(percentile(ds, 50)), ms(percentile(ds, 99)))
	}

	for _, p := range r.phases {
		if p.name != phaseKill || p.killAt.IsZero() {
			continue
		}
		rec := recoveryOf(p.reqs, p.killAt, steadyP99)
		fmt.Fprintf(&b, "\n## Node kill\n\n")
		fmt.Fprintf(&b, "SIGKILL of %s (the request stream's leader) %s into the phase, restarted %s later", p.killed,
			p.killAt.Sub(p.start).Round(100*time.Millisecond), p.restartAt.Sub(p.killAt).Round(100*time.Millisecond))
		if !p.caughtUp.IsZero() {
			fmt.Fprintf(&b, "; both streams had every replica current again %s after the restart", p.caughtUp.Sub(p.restartAt).Round(100*time.Millisecond))
		}
		fmt.Fprintf(&b, ".\n\n| figure | value |\n|---|---|\n")
		fmt.Fprintf(&b, "| first final status of a request sent after the kill | %s after the kill |\n", ms(rec.firstSuccess))
		fmt.Fprintf(&b, "| p99 back under %s (2x steady p99, at least +100 ms), by 1 s windows of send time | %s after the kill |\n", ms(rec.threshold), ms(rec.p99Back))
		fmt.Fprintf(&b, "| slowest request of the phase | %s |\n", ms(rec.worst))
		fmt.Fprintf(&b, "\n| seconds from kill (by send time) | requests | p50 | p99 |\n|---|---|---|---|\n")
		for _, row := range timeline(p.reqs, p.killAt, 5*time.Second) {
			fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", row.label, row.n, ms(row.p50), ms(row.p99))
		}
	}

	t := r.totals
	fmt.Fprintf(&b, "\n## Exactly once (all phases)\n\n| figure | count |\n|---|---|\n")
	fmt.Fprintf(&b, "| requests sent / stored by the stream | %d / %d |\n", t.sent, t.acked)
	fmt.Fprintf(&b, "| **lost** (stored, never applied) | **%d** |\n", t.lost)
	fmt.Fprintf(&b, "| **duplicated** (applied more than once) | **%d** |\n", t.duplicated)
	fmt.Fprintf(&b, "| no final status seen | %d |\n", t.noFinal)
	fmt.Fprintf(&b, "| redelivered to the agent's store, absorbed by the request id | %d |\n", t.redelivered)
	fmt.Fprintf(&b, "| publishes retried with the same Nats-Msg-Id | %d |\n", t.publishRetries)
	fmt.Fprintf(&b, "| terminal events seen more than once | %d |\n", t.extraFinals)

	fmt.Fprintf(&b, "\n## Control plane servers\n\nRSS at the phase's end (peak since the process started), CPU in cores averaged over the phase.\n\n")
	fmt.Fprintf(&b, "| process | idle (10 s, heartbeats only) |")
	for _, p := range r.phases {
		fmt.Fprintf(&b, " %s |", p.name)
	}
	fmt.Fprintf(&b, "\n|---|---|%s\n", strings.Repeat("---|", len(r.phases)))
	for i := range r.idle {
		fmt.Fprintf(&b, "| %s | %s |", r.idle[i].name, useCell(r.idle[i]))
		for _, p := range r.phases {
			if i < len(p.use) {
				fmt.Fprintf(&b, " %s |", useCell(p.use[i]))
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nJetStream in use at the end: %d streams, %d consumers (one durable per cluster, plus the bench's status watcher); request stream %d messages waiting (leader %s); status stream %d messages, %.1f MiB (leader %s).\n",
		t.streams, t.consumers, t.reqMsgs, t.reqLeader, t.statusMsgs, float64(t.statusBytes)/(1<<20), t.stLeader)
	if len(t.storeMiB) > 0 {
		parts := make([]string, len(t.storeMiB))
		for i, m := range t.storeMiB {
			parts[i] = fmt.Sprintf("%.1f MiB", m)
		}
		fmt.Fprintf(&b, "JetStream store on disk per node (streams and every consumer's RAFT log): %s.\n", strings.Join(parts, ", "))
	}
	if len(t.ready) > 0 {
		fmt.Fprintf(&b, "`scctl server` reported ready (its provisioning done): %s.\n", strings.Join(t.ready, "; "))
	}
	if r.err != nil {
		fmt.Fprintf(&b, "\n**The run stopped early:** %v\n", r.err)
	}
	return b.String()
}

func useCell(u usage) string {
	if u.rssMiB == 0 {
		return "-"
	}
	s := fmt.Sprintf("%.0f MiB (%.0f), %.2f cores", u.rssMiB, u.hwmMiB, u.cores)
	if u.restart {
		s += " (restarted)"
	}
	return s
}

type timelineRow struct {
	label    string
	n        int
	p50, p99 time.Duration
}

// timeline buckets reqs by send time relative to killAt.
func timeline(reqs []sent, killAt time.Time, step time.Duration) []timelineRow {
	buckets := map[int][]time.Duration{}
	for _, s := range reqs {
		if s.final.IsZero() || s.start.IsZero() {
			continue
		}
		d := s.start.Sub(killAt)
		i := int(d / step)
		if d < 0 {
			i--
		}
		buckets[i] = append(buckets[i], s.latency())
	}
	keys := make([]int, 0, len(buckets))
	for k := range buckets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]timelineRow, 0, len(keys))
	for _, k := range keys {
		ls := buckets[k]
		slices.Sort(ls)
		from, to := time.Duration(k)*step, time.Duration(k+1)*step
		out = append(out, timelineRow{label: fmt.Sprintf("%+d to %+d", int(from.Seconds()), int(to.Seconds())), n: len(ls),
			p50: percentile(ls, 50), p99: percentile(ls, 99)})
	}
	return out
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
