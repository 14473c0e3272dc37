package intake

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/kube/controller"
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

// Defaults of the Options that have one.
const (
	// DefaultWorkers is how many connections are applied at once. A
	// worker mostly waits on the API server: a create is two sequential
	// calls of about 10-20 ms each, so 4 workers cap the intake near
	// 100-200 requests/s, no headroom over the ~100 creates/s the chart's
	// 200/s client admits, and none once a loaded API server answers
	// slower. With 8 the client's rate limiter, not the pool, is the bound
	// (1,000 creates in about 10 s).
	DefaultWorkers = 8
	// DefaultMaxAge: a request that keeps failing transiently more than an
	// hour after its sending is ended with Failed/Expired rather than
	// retried forever. A request never tried yet (the agent was down) is
	// applied however old it is.
	DefaultMaxAge = time.Hour
	// DefaultMaxDeliveries: a request delivered this often was being
	// handled every time an agent stopped or crashed; it is ended with
	// Failed/Expired rather than redelivered forever.
	DefaultMaxDeliveries = 16
	// DefaultRetryBase and DefaultRetryMax bound the in-agent backoff of a
	// transient failure, which doubles per attempt.
	DefaultRetryBase = time.Second
	DefaultRetryMax  = 2 * time.Minute
	// DefaultAttemptTimeout bounds one attempt at storing a request. An
	// API server that has gone away does not always fail a call at once:
	// client-go retries a GET on a broken connection for up to ten
	// seconds, which is the leader's renew deadline. Cut at four, the
	// attempt fails as transient and the control plane hears
	// Pending/Retrying while this agent still leads, instead of nothing
	// until the next leader takes the request.
	DefaultAttemptTimeout = 4 * time.Second
)

// pullBatch is how many requests one pull asks for; the consumer's
// MaxAckPending bounds how many the agent holds in all.
const pullBatch = 64

// Options wires an Intake.
type Options struct {
	Cluster string
	Key     nkeys.KeyPair
	Store   Store
	Status  StatusPublisher
	// IsNotFound recognises the store's "no such connection" error, which
	// ends a first delete of an unknown connection (and is a success for a
	// redelivered delete: the connection is already gone).
	IsNotFound func(error) bool
	// IsPermanent recognises other store errors retrying cannot fix,
	// beyond the ones the intake classifies itself (see classify.go);
	// optional.
	IsPermanent func(error) bool
	// Namespaces refuses requests whose connection targets a namespace
	// it does not allow. The zero value refuses only the system
	// namespaces; the agent sets Release to its own namespace.
	Namespaces namespaces.Policy
	Logger     zerolog.Logger
	// InProgressEvery is how often every held request (queued behind its
	// connection, being applied, or waiting to retry) tells the server it
	// is still being worked on; default a third of the consumer's AckWait.
	InProgressEvery time.Duration
	// Workers is how many connections are applied concurrently; one
	// connection is never applied by two workers at once. Default
	// DefaultWorkers.
	Workers int
	// MaxAge ends a request older than this (by the stream's clock) with
	// Failed/Expired once an attempt at it has failed transiently; default
	// DefaultMaxAge.
	MaxAge time.Duration
	// MaxDeliveries ends a request delivered more often than this with
	// Failed/Expired; default DefaultMaxDeliveries.
	MaxDeliveries int
	// RetryBase and RetryMax bound the backoff of transient failures,
	// which doubles per attempt of the same request; defaults
	// DefaultRetryBase and DefaultRetryMax.
	RetryBase, RetryMax time.Duration
	// AttemptTimeout bounds one attempt's store writes; default
	// DefaultAttemptTimeout. An attempt cut short is a transient failure.
	AttemptTimeout time.Duration
	// Metrics receives the held-request gauge and the request duration
	// histogram (metrics.go); optional.
	Metrics *health.Metrics

	// now is the clock expiry reads; time.Now unless a test sets it.
	now func() time.Time
}

// Intake consumes one cluster's requests.
type Intake struct {
	o   Options
	js  jetstream.JetStream
	log zerolog.Logger
	now func() time.Time
}

// New checks the wiring.
func New(js jetstream.JetStream, o Options) (*Intake, error) {
	if err := protocol.ValidateCluster(o.Cluster); err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	if o.Key == nil || o.Store == nil || o.Status == nil {
		return nil, errors.New("intake: Key, Store and Status are required")
	}
	if err := o.Namespaces.Validate(); err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	if o.IsNotFound == nil {
		o.IsNotFound = func(error) bool { return false }
	}
	if o.IsPermanent == nil {
		o.IsPermanent = func(error) bool { return false }
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = DefaultMaxDeliveries
	}
	if o.RetryBase <= 0 {
		o.RetryBase = DefaultRetryBase
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.now == nil {
		o.now = time.Now
	}
	log := o.Logger.With().Str("controller", ControllerName).Str("cluster", o.Cluster).Logger()
	return &Intake{o: o, js: js, log: log, now: o.now}, nil
}

// Run consumes until ctx is done; call it once. Requests are queued per
// connection (dispatch.go) and applied by Workers workers. Losing the
// consumer (server restart, consumer deleted) is not fatal: Run finds it
// again with backoff and keeps what it holds. When ctx ends, every request
// still held is NAKed in stream order, so that the next agent gets them at
// once instead of after AckWait.
func (in *Intake) Run(ctx context.Context) error {
	d := newDispatcher(in.log)
	d.metrics = requestMetrics{in.o.Metrics}
	every := in.o.InProgressEvery
	if every <= 0 {
		every = natsbus.DefaultAckWait / 3
	}
	d.every.Store(int64(every))
	w := controller.New(ControllerName, func(ctx context.Context, key string) (controller.Result, error) {
		return controller.Result{}, in.sync(ctx, d, key)
	}, controller.Options[string]{
		// The per-key backoff is the request's; the overall bucket only
		// limits how fast failing requests are retried together.
		RateLimiter: controller.RateLimiter[string](in.o.RetryBase, in.o.RetryMax, 10, 100),
		Log:         in.log,
	})
	d.add = w.Add
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx, in.o.Workers) })
	wg.Go(func() { d.keepAlive(ctx) })
	in.consumeLoop(ctx, d)
	wg.Wait()
	d.handBack()
	return nil
}

func (in *Intake) consumeLoop(ctx context.Context, d *dispatcher) {
	backoff := natsbus.Backoff(500*time.Millisecond, 30*time.Second)
	for attempt := 1; ; attempt++ {
		cons, err := in.consumer(ctx)
		if err == nil {
			attempt = 0
			err = in.consume(ctx, cons, d)
		}
		if ctx.Err() != nil {
			return
		}
		in.log.Warn().Err(err).Msg("request consumer unavailable, retrying")
		select {
		case <-ctx.Done():
			return
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

// consume hands every delivered message to the dispatcher, which never
// blocks: the loop must keep reading so that one busy connection cannot
// stall the delivery of another's requests.
func (in *Intake) consume(ctx context.Context, cons jetstream.Consumer, d *dispatcher) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(pullBatch))
	if err != nil {
		return fmt.Errorf("pull from %s: %w", protocol.ConsumerName(in.o.Cluster), err)
	}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			// Drain, not Stop: requests already delivered into the
			// buffer are taken and handed back with the rest, instead of
			// waiting out AckWait. Stop if the drain does not finish.
			it.Drain()
			select {
			case <-stopped:
			case <-time.After(finishTimeout):
				it.Stop()
			}
		case <-stopped:
			it.Stop()
		}
	}()
	if in.o.InProgressEvery <= 0 {
		if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
			d.every.Store(int64(info.Config.AckWait / 3))
		}
	}
	in.log.Info().Str("consumer", protocol.ConsumerName(in.o.Cluster)).Int("workers", in.o.Workers).Msg("consuming requests")
	for {
		msg, err := it.Next()
		switch {
		case err == nil:
			d.offer(msg)
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
