package statuspub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// ErrWrongCluster: the event names another cluster; its subject would be
// outside this agent's permissions.
var ErrWrongCluster = errors.New("status event for another cluster")

// Publisher sends a cluster's status events with a bounded retry.
type Publisher struct {
	js       jetstream.JetStream
	cluster  string
	log      zerolog.Logger
	attempts int
	wait     time.Duration
	timeout  time.Duration
}

// Option tunes a Publisher.
type Option func(*Publisher)

// WithRetry sets the number of attempts and the first wait between them
// (doubling); the default is 5 attempts from 200ms, about 6s in all, which
// rides out a JetStream leader change but not an outage.
func WithRetry(attempts int, wait time.Duration) Option {
	return func(p *Publisher) { p.attempts, p.wait = max(attempts, 1), wait }
}

// WithTimeout bounds each attempt (default 5s). While the connection is
// down a publish waits in the reconnect buffer for its whole timeout.
func WithTimeout(d time.Duration) Option { return func(p *Publisher) { p.timeout = d } }

// WithLogger sets the logger.
func WithLogger(l zerolog.Logger) Option { return func(p *Publisher) { p.log = l } }

// New returns a Publisher for cluster.
func New(js jetstream.JetStream, cluster string, opts ...Option) *Publisher {
	p := &Publisher{js: js, cluster: cluster, log: zerolog.Nop(), attempts: 5, wait: 200 * time.Millisecond, timeout: 5 * time.Second}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Publish sends ev to its connection's status subject. A duplicate (same
// MsgID within the window) counts as success.
func (p *Publisher) Publish(ctx context.Context, ev protocol.StatusEvent) error {
	if ev.Cluster != p.cluster {
		return fmt.Errorf("event for %q on publisher of %q: %w", ev.Cluster, p.cluster, ErrWrongCluster)
	}
	ev.Header = protocol.NewHeader(protocol.KindStatus)
	data, err := protocol.Encode(ev)
	if err != nil {
		return fmt.Errorf("status of %s: %w", ev.ObjectID, err)
	}
	subject := protocol.StatusSubject(p.cluster, ev.ObjectID)
	wait := p.wait
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.timeout)
		_, err = p.js.Publish(actx, subject, data, jetstream.WithMsgID(MsgID(ev)), jetstream.WithExpectStream(protocol.StatusStream))
		cancel()
		if err == nil {
			p.log.Debug().Str("objectId", ev.ObjectID).Str("requestId", ev.RequestID).
				Str("phase", string(ev.Phase)).Str("reason", ev.Reason).Msg("status published")
			return nil
		}
		if attempt >= p.attempts || !retryable(err) || ctx.Err() != nil {
			return fmt.Errorf("publish status of %s after %d attempt(s): %w", ev.ObjectID, attempt, err)
		}
		p.log.Debug().Err(err).Str("objectId", ev.ObjectID).Int("attempt", attempt).Msg("status publish failed, retrying")
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish status of %s: %w", ev.ObjectID, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// retryable: no stream or no connection right now may pass; a permission
// violation or an oversized event will not.
func retryable(err error) bool {
	switch {
	case errors.Is(err, nats.ErrPermissionViolation), errors.Is(err, protocol.ErrTooLarge),
		errors.Is(err, jetstream.ErrInvalidSubject), errors.Is(err, nats.ErrMaxPayload):
		return false
	}
	return true
}
