package controlplane

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
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
// of generation >= g is our outcome too.
func (c *Client) Wait(ctx context.Context, name, requestID string, progress func(protocol.StatusEvent)) (protocol.StatusEvent, error) {
	subject := protocol.StatusSubject(c.cluster, connection.ObjectID(name))
	cons, err := c.js.OrderedConsumer(ctx, protocol.StatusStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return protocol.StatusEvent{}, fmt.Errorf("follow status of %s: %w", name, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return protocol.StatusEvent{}, fmt.Errorf("follow status of %s: %w", name, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	acceptedGen := int64(-1)
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) && ctx.Err() != nil {
				return protocol.StatusEvent{}, fmt.Errorf("waiting for request %s on %s: %w", requestID, name, ctx.Err())
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				continue // reconnecting; the ordered consumer resumes
			}
			return protocol.StatusEvent{}, fmt.Errorf("follow status of %s: %w", name, err)
		}
		var ev protocol.StatusEvent
		if err := protocol.Decode(msg.Data(), protocol.KindStatus, &ev); err != nil {
			continue // not ours to judge; a newer agent may send more
		}
		if progress != nil {
			progress(ev)
		}
		ours := ev.RequestID == requestID
		if ours && acceptedGen < 0 && ev.Phase == connection.PhasePending {
			acceptedGen = ev.Generation
		}
		if !terminal(ev.Phase) {
			continue
		}
		// Rejections at intake carry generation 0 and another request's
		// id, so they never end a wait for an accepted request.
		if ours || (acceptedGen > 0 && ev.Generation >= acceptedGen) {
			return ev, nil
		}
	}
}

func terminal(p connection.Phase) bool {
	return p == connection.PhaseSucceeded || p == connection.PhaseFailed || p == connection.PhaseDeleted
}
