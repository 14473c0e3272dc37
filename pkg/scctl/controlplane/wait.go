package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Wait follows the status of connection name until requestID reaches a
// terminal phase (Succeeded, Failed, Deleted) and returns that event;
// progress, if set, sees every event on the way.
//
// It reads the connection's retained events from the start (the stream
// keeps the last few per connection), so it finds an outcome that happened
// before Wait was called. A later request may supersede ours before sc-job
// ran it; once our request was accepted at generation g, a terminal event
// of generation >= g is our outcome too. A control-plane node lost while
// it waits is ridden through: it follows again from the last event seen.
func (c *Client) Wait(ctx context.Context, name, requestID string, progress func(protocol.StatusEvent)) (protocol.StatusEvent, error) {
	f := &follower{requestID: requestID, progress: progress, acceptedGen: -1}
	subject := protocol.StatusSubject(c.cluster, connection.ObjectID(name))
	backoff := natsbus.Backoff(100*time.Millisecond, 2*time.Second)
	for attempt := 1; ; attempt++ {
		seen := f.lastSeq
		ev, err := c.follow(ctx, subject, f)
		if err == nil {
			return ev, nil
		}
		if ctx.Err() != nil {
			return protocol.StatusEvent{}, fmt.Errorf("waiting for request %s on %s: %w (last: %w)", requestID, name, ctx.Err(), err)
		}
		if followingCannotResume(err) {
			return protocol.StatusEvent{}, fmt.Errorf("waiting for request %s on %s: %w", requestID, name, err)
		}
		// The ordered consumer gave up (its node was lost mid-pull, a
		// re-create timed out while the stream elected a leader): follow
		// again from the event after the last one seen, until ctx ends.
		if f.lastSeq > seen || errors.Is(err, errSilent) {
			attempt = 1
		}
		t := time.NewTimer(backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return protocol.StatusEvent{}, fmt.Errorf("waiting for request %s on %s: %w (last: %w)", requestID, name, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// followingCannotResume: err is no leader change or lost node that a new
// consumer rides out, so waiting on would only wait out ctx.
func followingCannotResume(err error) bool {
	for _, permanent := range []error{
		jetstream.ErrStreamNotFound, jetstream.ErrJetStreamNotEnabled, jetstream.ErrJetStreamNotEnabledForAccount,
		nats.ErrConnectionClosed, nats.ErrPermissionViolation, nats.ErrAuthorization, jetstream.ErrInvalidOption,
	} {
		if errors.Is(err, permanent) {
			return true
		}
	}
	return false
}

// followSilence bounds how long one ordered consumer may stay silent
// before Wait replaces it (starting after the last event seen). nats.go
// notices a consumer lost with its node by missed heartbeats and re-creates
// it, but that recovery could stall past a 30 s wait when the client's own
// server went at the same time (seen in the node-loss test, about 1 run in
// 8). A wait with no news re-creates its consumer this often, and the
// server drops a replaced one after followInactive.
const (
	followSilence  = 10 * time.Second
	followInactive = 2 * followSilence
)

// errSilent: no event within followSilence; not a failure.
var errSilent = errors.New("no status event within the follow interval")

// follower is one Wait's state across the ordered consumers it uses.
type follower struct {
	requestID   string
	progress    func(protocol.StatusEvent)
	acceptedGen int64
	// lastSeq is the stream sequence of the last event seen; the next
	// consumer starts after it.
	lastSeq uint64
}

// follow reads subject's events with one ordered consumer until f's
// request ends (nil error) or the consumer fails.
func (c *Client) follow(ctx context.Context, subject string, f *follower) (protocol.StatusEvent, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy,
		InactiveThreshold: followInactive}
	if f.lastSeq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f.lastSeq+1
	}
	// The create is one API request; during a node loss its answer can be
	// lost for good, so it gets the client's per-call bound, not the
	// whole wait's, and Wait asks again.
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	cons, err := c.js.OrderedConsumer(cctx, protocol.StatusStream, cfg)
	cancel()
	if err != nil {
		return protocol.StatusEvent{}, fmt.Errorf("follow status: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return protocol.StatusEvent{}, fmt.Errorf("follow status: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(followSilence))
		switch {
		case errors.Is(err, jetstream.ErrNoHeartbeat):
			continue // reconnecting; the ordered consumer resumes
		case errors.Is(err, nats.ErrTimeout):
			return protocol.StatusEvent{}, errSilent
		}
		if err != nil {
			return protocol.StatusEvent{}, fmt.Errorf("follow status: %w", err)
		}
		if md, err := msg.Metadata(); err == nil {
			f.lastSeq = md.Sequence.Stream
		}
		var ev protocol.StatusEvent
		if err := protocol.Decode(msg.Data(), protocol.KindStatus, &ev); err != nil {
			continue // not ours to judge; a newer agent may send more
		}
		if f.progress != nil {
			f.progress(ev)
		}
		ours := ev.RequestID == f.requestID
		if ours && f.acceptedGen < 0 && ev.Phase == connection.PhasePending {
			f.acceptedGen = ev.Generation
		}
		if !terminal(ev.Phase) {
			continue
		}
		// Rejections at intake carry generation 0 and another request's
		// id, so they never end a wait for an accepted request.
		if ours || (f.acceptedGen > 0 && ev.Generation >= f.acceptedGen) {
			return ev, nil
		}
	}
}

func terminal(p connection.Phase) bool {
	return p == connection.PhaseSucceeded || p == connection.PhaseFailed || p == connection.PhaseDeleted
}
