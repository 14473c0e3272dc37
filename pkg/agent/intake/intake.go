package intake

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// ControllerName names this component in logs.
const ControllerName = "intake"

// Store persists accepted changes. pkg/kube/store implements it; applied is false
// when the request id was already applied (the connection is returned as
// stored, so its current status can be re-published).
type Store interface {
	Apply(ctx context.Context, ch connection.Change) (c connection.Connection, applied bool, err error)
}

// StatusPublisher sends status events (statuspub.Publisher).
type StatusPublisher interface {
	Publish(ctx context.Context, ev protocol.StatusEvent) error
}

// Options wires an Intake.
type Options struct {
	Cluster string
	Key     nkeys.KeyPair
	Store   Store
	Status  StatusPublisher
	// IsNotFound recognises the store's "no such connection" error, which
	// makes a delete permanent failure instead of a retry.
	IsNotFound func(error) bool
	// IsPermanent recognises other store errors retrying cannot fix (an
	// object owned by someone else, say); optional.
	IsPermanent func(error) bool
	Logger      zerolog.Logger
	// InProgressEvery is how often a slow Apply tells the server it is
	// still working; default a third of the consumer's AckWait.
	InProgressEvery time.Duration
	// RetryBase and RetryMax bound the redelivery delay of transient
	// failures, which doubles per delivery; defaults 1s and 2m.
	RetryBase, RetryMax time.Duration
}

// Intake consumes one cluster's requests.
type Intake struct {
	o   Options
	js  jetstream.JetStream
	log zerolog.Logger
}

// New checks the wiring.
func New(js jetstream.JetStream, o Options) (*Intake, error) {
	if err := protocol.ValidateCluster(o.Cluster); err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	if o.Key == nil || o.Store == nil || o.Status == nil {
		return nil, errors.New("intake: Key, Store and Status are required")
	}
	if o.IsNotFound == nil {
		o.IsNotFound = func(error) bool { return false }
	}
	if o.IsPermanent == nil {
		o.IsPermanent = func(error) bool { return false }
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 2 * time.Minute
	}
	log := o.Logger.With().Str("controller", ControllerName).Str("cluster", o.Cluster).Logger()
	return &Intake{o: o, js: js, log: log}, nil
}

// Run consumes until ctx is done. Losing the consumer (server restart,
// consumer deleted) is not fatal: Run finds it again with backoff. A
// request in flight when ctx ends is NAKed so that the next agent gets it
// at once instead of after AckWait.
func (in *Intake) Run(ctx context.Context) error {
	backoff := natsbus.Backoff(500*time.Millisecond, 30*time.Second)
	for attempt := 1; ; attempt++ {
		cons, err := in.consumer(ctx)
		if err == nil {
			attempt = 0
			err = in.consume(ctx, cons)
		}
		if ctx.Err() != nil {
			return nil
		}
		in.log.Warn().Err(err).Msg("request consumer unavailable, retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff(attempt + 1)):
		}
	}
}

// consumer looks the durable consumer up. The control plane creates it;
// if it is missing and this user may create consumers (a single-tenant
// server), the agent creates it itself.
func (in *Intake) consumer(ctx context.Context) (jetstream.Consumer, error) {
	name := protocol.ConsumerName(in.o.Cluster)
	cons, err := in.js.Consumer(ctx, protocol.RequestStream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = in.js.CreateOrUpdateConsumer(ctx, protocol.RequestStream, natsbus.ConsumerConfig(in.o.Cluster, 0))
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", name, protocol.RequestStream, err)
	}
	return cons, nil
}

func (in *Intake) consume(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("pull from %s: %w", protocol.ConsumerName(in.o.Cluster), err)
	}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-stopped:
			it.Stop()
		}
	}()
	every := in.o.InProgressEvery
	if every <= 0 {
		every = natsbus.DefaultAckWait / 3
		if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
			every = info.Config.AckWait / 3
		}
	}
	in.log.Info().Str("consumer", protocol.ConsumerName(in.o.Cluster)).Msg("consuming requests")
	for {
		msg, err := it.Next()
		switch {
		case err == nil:
			in.handle(ctx, msg, every)
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return ctx.Err()
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			return err
		default:
			// Missed heartbeats while disconnected: the iterator keeps
			// pulling after a reconnect, so only note it.
			in.log.Debug().Err(err).Msg("pull interrupted")
		}
	}
}
