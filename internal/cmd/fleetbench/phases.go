package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Phase names.
const (
	phaseSteady = "steady"
	phaseBurst  = "burst"
	phaseKill   = "kill"
)

// procSample is what /proc says of one process.
type procSample struct {
	pid      int
	rssKiB   int64
	hwmKiB   int64
	cpuTicks int64 // utime + stime, in clock ticks
	at       time.Time
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

func readProc(pid int) (procSample, bool) {
	s := procSample{pid: pid, at: time.Now()}
	if pid <= 0 {
		return s, false
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, false
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			s.rssKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "VmHWM:":
			s.hwmKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, false
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	rest := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(rest) > 12 {
		u, _ := strconv.ParseInt(rest[11], 10, 64)
		k, _ := strconv.ParseInt(rest[12], 10, 64)
		s.cpuTicks = u + k
	}
	return s, true
}

// usage is one process over one phase.
type usage struct {
	name    string
	rssMiB  float64 // at the phase's end
	hwmMiB  float64 // peak since the process started
	cores   float64 // CPU time / wall time over the phase
	restart bool    // the process was replaced during the phase: cores covers the new one only
}

// meter samples the servers and the bench process at a phase's start and end.
type meter struct {
	names []string
	start []procSample
}

func (b *bench) pids() ([]string, []int) {
	names := []string{}
	pids := []int{}
	for _, n := range b.cp.nodes {
		names = append(names, n.name)
		pids = append(pids, n.pid())
	}
	return append(names, "bench (agents + control plane clients)"), append(pids, os.Getpid())
}

func (b *bench) startMeter() *meter {
	names, pids := b.pids()
	m := &meter{names: names}
	for _, p := range pids {
		s, _ := readProc(p)
		m.start = append(m.start, s)
	}
	return m
}

func (m *meter) end(b *bench) []usage {
	_, pids := b.pids()
	out := make([]usage, len(pids))
	for i, p := range pids {
		u := usage{name: m.names[i]}
		s, ok := readProc(p)
		if ok {
			u.rssMiB, u.hwmMiB = float64(s.rssKiB)/1024, float64(s.hwmKiB)/1024
			from := m.start[i]
			if from.pid != p {
				u.restart = true
				from = procSample{at: from.at} // the new process's whole life, over the phase's wall time
			}
			if wall := s.at.Sub(from.at).Seconds(); wall > 0 {
				u.cores = float64(s.cpuTicks-from.cpuTicks) / clockTicks / wall
			}
		}
		out[i] = u
	}
	return out
}

// phaseResult is what the report shows of one phase.
type phaseResult struct {
	name      string
	reqs      []sent
	use       []usage
	killed    string
	killAt    time.Time
	restartAt time.Time
	caughtUp  time.Time
	start     time.Time
}

// runPhases runs steady, burst and kill in that order; rep gets each
// result as it ends, so a failing phase keeps the earlier ones.
func (b *bench) runPhases(ctx context.Context, rep *report) error {
	rep.idle = b.idleUse(ctx)

	// Steady: a fixed rate over random clusters, with queries alongside.
	b.log.Info().Float64("rate", b.c.Rate).Dur("duration", b.c.Duration).Msg("steady phase")
	m, start := b.startMeter(), time.Now()
	stopQ := make(chan struct{})
	qdone := make(chan struct{})
	go func() { b.queriesWhile(ctx, b.c.QueryRate, stopQ); close(qdone) }()
	b.paced(ctx, phaseSteady, b.c.Duration, nil)
	close(stopQ)
	<-qdone
	b.mu.Lock()
	rep.queries = append([]queryResult(nil), b.queries...)
	b.mu.Unlock()
	use := m.end(b)
	b.settle(ctx, phaseSteady)
	rep.phases = append(rep.phases, phaseResult{name: phaseSteady, use: use, start: start})
	if err := ctx.Err(); err != nil {
		return err
	}

	// Burst: every request published at once.
	if b.c.Burst > 0 {
		b.log.Info().Int("requests", b.c.Burst).Msg("burst phase")
		m, start = b.startMeter(), time.Now()
		for range b.c.Burst {
			b.wg.Go(func() { b.send(ctx, phaseBurst) })
		}
		b.settle(ctx, phaseBurst)
		use = m.end(b)
		rep.phases = append(rep.phases, phaseResult{name: phaseBurst, use: use, start: start})
		if err := ctx.Err(); err != nil {
			return err
		}
	}

	if b.c.KillDuration > 0 {
		// The kill is judged against a quiet system: what the burst left
		// in flight finishes first.
		b.settle(ctx, phaseSteady, phaseBurst)
		r, err := b.killPhase(ctx)
		rep.phases = append(rep.phases, r)
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// collect gives every phase its requests as they stand once the last
// final statuses are in (or the grace has passed), so that a phase whose
// statuses arrived after it ended is judged by when they arrived.
func (b *bench) collect(ctx context.Context, rep *report) {
	names := make([]string, len(rep.phases))
	for i, p := range rep.phases {
		names[i] = p.name
	}
	b.settle(ctx, names...)
	for i := range rep.phases {
		rep.phases[i].reqs = b.phase(rep.phases[i].name)
	}
}

// idleUse measures the servers with every agent connected and nothing
// sent (heartbeats and idle pulls only), over 10 seconds.
func (b *bench) idleUse(ctx context.Context) []usage {
	m := b.startMeter()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
	}
	return m.end(b)
}

// killPhase sends at the steady rate, kills the request stream's leader
// with SIGKILL at KillAt and starts it again RestartAfter later.
func (b *bench) killPhase(ctx context.Context) (phaseResult, error) {
	r := phaseResult{name: phaseKill}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	leader, err := streamLeader(lctx, b.watchJS, protocol.RequestStream)
	cancel()
	if err != nil {
		return r, fmt.Errorf("find the request stream's leader: %w", err)
	}
	victim := b.cp.node(leader)
	if victim == nil {
		return r, fmt.Errorf("stream leader %q is none of the bench's nodes", leader)
	}
	r.killed = leader
	b.log.Info().Str("node", leader).Dur("killAt", b.c.KillAt).Dur("restartAfter", b.c.RestartAfter).Msg("kill phase")
	m, start := b.startMeter(), time.Now()
	r.start = start
	var restartErr error
	caught := make(chan time.Time, 1)
	b.paced(ctx, phaseKill, b.c.KillDuration, func(since time.Duration) {
		switch {
		case r.killAt.IsZero() && since >= b.c.KillAt:
			victim.signal(syscall.SIGKILL)
			r.killAt = time.Now()
			b.log.Warn().Str("node", leader).Msg("killed (SIGKILL)")
		case !r.killAt.IsZero() && r.restartAt.IsZero() && since >= b.c.KillAt+b.c.RestartAfter:
			restartErr = victim.start()
			r.restartAt = time.Now()
			b.log.Warn().Str("node", leader).Err(restartErr).Msg("restarted")
			go func() {
				for ctx.Err() == nil {
					cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					ok := replicasCurrent(cctx, b.watchJS, protocol.RequestStream) && replicasCurrent(cctx, b.watchJS, protocol.StatusStream)
					cancel()
					if ok {
						caught <- time.Now()
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}()
		}
	})
	b.settle(ctx, phaseKill)
	r.use = m.end(b)
	select {
	case t := <-caught:
		r.caughtUp = t
	case <-time.After(30 * time.Second):
	}
	return r, restartErr
}

// totals are the exactly-once figures over every phase.
type totals struct {
	sent, acked, finals int
	lost                int // acked, never applied
	noFinal             int // acked, no terminal status seen
	duplicated          int // applied more than once
	redelivered         int // reached the store more than once (absorbed by the request id)
	extraFinals         int // terminal events beyond the first per request
	publishRetries      int // publishes that needed more than one attempt
	notPublished        int
	streams, consumers  int
	reqMsgs, statusMsgs uint64
	statusBytes         uint64
	reqLeader, stLeader string
	storeMiB            []float64 // each node's JetStream directory on disk
	ready               []string  // each scctl server node: when it reported ready
}

func (b *bench) totals(f *simFleet) totals {
	calls, applied := f.counts()
	var t totals
	b.mu.Lock()
	for _, s := range b.order {
		t.sent++
		if s.attempts > 1 {
			t.publishRetries++
		}
		if s.acked.IsZero() {
			t.notPublished++
			continue
		}
		t.acked++
		if !s.final.IsZero() {
			t.finals++
		} else {
			t.noFinal++
		}
		if s.finals > 1 {
			t.extraFinals += s.finals - 1
		}
		switch n := applied[s.id]; {
		case n == 0:
			t.lost++
		case n > 1:
			t.duplicated++
		}
		if calls[s.id] > 1 {
			t.redelivered++
		}
	}
	b.mu.Unlock()
	for _, n := range b.cp.nodes {
		if b.cp.mode == "scctl" {
			r := "never"
			if d := n.readyAfter(); d > 0 {
				r = ms(d) + " after its last start"
			}
			t.ready = append(t.ready, n.name+": "+r)
		}
		t.storeMiB = append(t.storeMiB, float64(dirBytes(filepath.Join(n.store, "jetstream")))/(1<<20))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if info, err := b.watchJS.AccountInfo(ctx); err == nil {
		t.streams, t.consumers = info.Streams, info.Consumers
	}
	if s, err := b.watchJS.Stream(ctx, protocol.RequestStream); err == nil {
		t.reqMsgs = s.CachedInfo().State.Msgs
		if ci := s.CachedInfo().Cluster; ci != nil {
			t.reqLeader = ci.Leader
		}
	}
	if s, err := b.watchJS.Stream(ctx, protocol.StatusStream); err == nil {
		t.statusMsgs, t.statusBytes = s.CachedInfo().State.Msgs, s.CachedInfo().State.Bytes
		if ci := s.CachedInfo().Cluster; ci != nil {
			t.stLeader = ci.Leader
		}
	}
	return t
}

// dirBytes is the size of the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
