package intake_test

import (
	"context"
	"strings"
	"sync"

	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// gate wraps the harness store so that a test can hold one request mid-
// apply, or make it fail, while every other request goes through: the
// interleavings below are built from these channels, never from sleeps.
type gate struct {
	next intake.Store
	// before runs ahead of the store; an error is returned instead of
	// storing. after runs once the store has the change (stored, not yet
	// answered); an error is returned as the Apply's. Both are set before
	// the agent starts and may be nil.
	before, after func(ctx context.Context, ch connection.Change) error

	mu    sync.Mutex
	trace []string // "start <id>", "end <id>", in the order the store saw them
	tries map[string]int
}

func (g *gate) Apply(ctx context.Context, ch connection.Change) (connection.Connection, bool, error) {
	g.note("start " + ch.RequestID)
	defer g.note("end " + ch.RequestID)
	if g.before != nil {
		if err := g.before(ctx, ch); err != nil {
			return connection.Connection{}, false, err
		}
	}
	c, applied, err := g.next.Apply(ctx, ch)
	if err == nil && g.after != nil {
		err = g.after(ctx, ch)
	}
	return c, applied, err
}

func (g *gate) note(s string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.trace = append(g.trace, s)
	if g.tries == nil {
		g.tries = map[string]int{}
	}
	if id, ok := strings.CutPrefix(s, "start "); ok {
		g.tries[id]++
	}
}

// seen is what the store saw so far.
func (g *gate) seen() (trace []string, tries map[string]int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	tries = map[string]int{}
	for k, v := range g.tries {
		tries[k] = v
	}
	return append([]string(nil), g.trace...), tries
}

// use installs g in front of the store the harness passes.
func (g *gate) use(o *intake.Options) {
	g.next = o.Store
	o.Store = g
}

// hold is a point where an Apply waits until released (or until its
// agent stops); entered receives the request id of each Apply that
// reaches it.
type hold struct {
	entered chan string
	release chan struct{}
}

func newHold() *hold { return &hold{entered: make(chan string, 16), release: make(chan struct{})} }

func (h *hold) wait(ctx context.Context, id string) error {
	h.entered <- id
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// countingStatus counts what the intake asked to publish, before the
// stream's duplicate window could hide a repeat.
type countingStatus struct {
	next intake.StatusPublisher
	mu   sync.Mutex
	sent []protocol.StatusEvent
}

func (c *countingStatus) Publish(ctx context.Context, ev protocol.StatusEvent) error {
	c.mu.Lock()
	c.sent = append(c.sent, ev)
	c.mu.Unlock()
	return c.next.Publish(ctx, ev)
}

func (c *countingStatus) use(o *intake.Options) {
	c.next = o.Status
	o.Status = c
}

// of returns the events published for request id.
func (c *countingStatus) of(id string) []protocol.StatusEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []protocol.StatusEvent
	for _, ev := range c.sent {
		if ev.RequestID == id {
			out = append(out, ev)
		}
	}
	return out
}

// stored returns every status event the stream holds for request id of
// connection name, in order.
func (e *env) stored(name, id string) []protocol.StatusEvent {
	e.t.Helper()
	_, js := devservertest.AdminConn(e.t, e.srv)
	ctx := ctxT(e.t)
	s, err := js.Stream(ctx, protocol.StatusStream)
	require.NoError(e.t, err)
	info, err := s.Info(ctx)
	require.NoError(e.t, err)
	subject := protocol.StatusSubject(cluster, connection.ObjectID(name))
	var out []protocol.StatusEvent
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil || m.Subject != subject {
			continue
		}
		var ev protocol.StatusEvent
		if protocol.Decode(m.Data, protocol.KindStatus, &ev) == nil && ev.RequestID == id {
			out = append(out, ev)
		}
	}
	return out
}

func phases(evs []protocol.StatusEvent) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, string(ev.Phase)+"/"+ev.Reason)
	}
	return out
}
