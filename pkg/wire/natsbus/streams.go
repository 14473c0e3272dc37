package natsbus

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Stream and consumer tuning, chosen here once (see docs/protocol.md,
// "Streams and their limits", for the reasoning behind each number).
const (
	// RequestDuplicateWindow is how long the server remembers a request id
	// (Nats-Msg-Id): a control plane that retries a publish within it
	// stores the request once. Later re-sends are caught by the agent,
	// which remembers applied ids per connection.
	RequestDuplicateWindow = 10 * time.Minute
	// RequestMaxAge drops requests no agent picked up within a week: a
	// create that lands weeks late would surprise more than it helps.
	RequestMaxAge = 7 * 24 * time.Hour
	// RequestMaxPerCluster bounds the requests waiting for one cluster
	// (the request subject is per cluster). Beyond it the control plane's
	// publish is refused for that cluster only (DiscardNew per subject):
	// a queued request is never evicted, and a cluster whose agent is
	// gone cannot take the whole stream from the others.
	RequestMaxPerCluster = 1000
	// RequestMaxBytes caps the whole request stream. It is refused
	// (DiscardNew) rather than evicting, for the same reason.
	RequestMaxBytes = 1 << 30
	// requestMaxMsgSize stays at NATS' default max payload, above
	// protocol.MaxMessageBytes: the agent enforces that limit itself and
	// reports the rejection as a Failed status the user sees. Only the
	// control plane publishes here.
	requestMaxMsgSize = 1 << 20

	// StatusPerSubject keeps the last few events of each connection (and
	// heartbeats of each cluster) so that a waiter that starts late still
	// finds its request's outcome; older ones are dropped per subject.
	StatusPerSubject = 10
	// StatusMaxAge forgets the events of connections long gone (their
	// subjects would otherwise keep StatusPerSubject events forever) and
	// the last heartbeat of a cluster removed a month ago.
	StatusMaxAge = 30 * 24 * time.Hour
	// StatusMaxBytes and StatusMaxMsgs cap the whole status stream, which
	// every cluster's credential may write to (each only its own
	// subjects): a flood from one leaked credential ends at this size
	// instead of filling the control plane's JetStream store, and it can
	// never touch the request stream. Discard is Old, so the flood evicts
	// the oldest events first while every agent keeps publishing; with
	// DiscardNew it would block every cluster's status until MaxAge.
	// StatusMaxMsgs also bounds the server's per-subject index memory,
	// which a flood of distinct subjects would otherwise grow.
	StatusMaxBytes = 1 << 30
	StatusMaxMsgs  = 1_000_000
	// StatusMaxMsgSize admits the largest event the agent encodes
	// (protocol.MaxMessageBytes) plus its headers (Nats-Msg-Id,
	// Nats-Expected-Stream), and nothing larger.
	StatusMaxMsgSize = protocol.MaxMessageBytes + statusHeaderAllowance
	// StatusDuplicateWindow drops the same status event published twice
	// (intake and the informer both see a Pending) within it.
	StatusDuplicateWindow = 2 * time.Minute

	statusHeaderAllowance = 4 << 10

	// DefaultAckWait is how long the server waits for an ack before
	// redelivering; the agent sends InProgress well within it while a slow
	// apply runs, so it only matters when an agent dies mid-request.
	DefaultAckWait = 30 * time.Second

	// MaxConsumers of each stream: one durable consumer per cluster on the
	// request stream, one ordered consumer per waiting control-plane call
	// on the status stream. Left unset, nats-server caps a stream at 1,000
	// consumers (its JetStream default), so a fleet's 1,001st cluster
	// would be refused; a positive stream limit lifts that cap, in every
	// authentication mode.
	MaxConsumers = 100_000
)

// RequestStreamConfig is the work queue of connection requests. WorkQueue
// retention: a request is deleted once its agent acks it, so a consumer
// that is ever re-created cannot replay old creates and deletes, and the
// store holds only outstanding work. File storage keeps unacked requests
// across a server restart.
func RequestStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 protocol.RequestStream,
		Description:          "sc-extension connection requests, one subject per cluster",
		Subjects:             protocol.RequestStreamSubjects(),
		Retention:            jetstream.WorkQueuePolicy,
		Storage:              jetstream.FileStorage,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxAge:               RequestMaxAge,
		MaxBytes:             RequestMaxBytes,
		MaxMsgsPerSubject:    RequestMaxPerCluster,
		MaxMsgSize:           requestMaxMsgSize,
		Duplicates:           RequestDuplicateWindow,
		MaxConsumers:         MaxConsumers,
		Replicas:             1,
	}
}

// StatusStreamConfig holds status events and heartbeats for the control plane.
func StatusStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              protocol.StatusStream,
		Description:       "sc-extension connection status events and agent heartbeats",
		Subjects:          protocol.StatusStreamSubjects(),
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
		MaxAge:            StatusMaxAge,
		MaxBytes:          StatusMaxBytes,
		MaxMsgs:           StatusMaxMsgs,
		MaxMsgsPerSubject: StatusPerSubject,
		MaxMsgSize:        StatusMaxMsgSize,
		Duplicates:        StatusDuplicateWindow,
		MaxConsumers:      MaxConsumers,
		Replicas:          1,
	}
}

// EnsureStreams creates the request and status streams, or updates
// streams that exist in place (an older control plane created them
// without limits): an update keeps every stored message, and the server
// then applies the new limits to them. cfgs default to
// RequestStreamConfig and StatusStreamConfig; a caller may pass its own
// (smaller limits in tests, a replicated production deployment).
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfgs ...jetstream.StreamConfig) error {
	if len(cfgs) == 0 {
		cfgs = []jetstream.StreamConfig{RequestStreamConfig(), StatusStreamConfig()}
	}
	for _, cfg := range cfgs {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("create or update stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// WithReplicas returns copies of cfgs (default: RequestStreamConfig and
// StatusStreamConfig) stored on n servers of a JetStream cluster: 1 for a
// development server, 3 in production, where a stream then survives the
// loss of any one node. The consumers on them take the stream's replica
// count (ConsumerConfig leaves Replicas 0, which means inherit).
func WithReplicas(n int, cfgs ...jetstream.StreamConfig) []jetstream.StreamConfig {
	if len(cfgs) == 0 {
		cfgs = []jetstream.StreamConfig{RequestStreamConfig(), StatusStreamConfig()}
	}
	out := make([]jetstream.StreamConfig, len(cfgs))
	for i, cfg := range cfgs {
		cfg.Replicas = max(n, 1)
		out[i] = cfg
	}
	return out
}

// RequestMaxAckPending is how many delivered, unfinished requests one
// cluster's consumer may hold. The agent orders requests per connection
// itself (pkg/agent/intake: one FIFO per connection id, in stream order),
// so the server's window only bounds memory and how many requests may wait
// behind connections that are retrying: with 256 in flight, one connection
// whose request keeps failing no longer holds back every other tenant.
const RequestMaxAckPending = 256

// ConsumerConfig is the durable pull consumer of one cluster's agent.
// Ordering is kept by the agent, not by the server: JetStream delivers new
// messages in stream order, and the agent queues each one behind the
// earlier requests of the same connection (see docs/protocol.md), so
// MaxAckPending can be larger than one without an update overtaking its
// create.
func ConsumerConfig(cluster string, ackWait time.Duration) jetstream.ConsumerConfig {
	if ackWait <= 0 {
		ackWait = DefaultAckWait
	}
	return jetstream.ConsumerConfig{
		Durable:       protocol.ConsumerName(cluster),
		Description:   "sc-extension agent of cluster " + cluster,
		FilterSubject: protocol.RequestSubject(cluster),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: RequestMaxAckPending,
		// Replicas stays 0: the consumer inherits the stream's replica
		// count, so an R3 request stream has R3 consumers without a second
		// setting that could disagree with it.
		// Redeliver forever: the server would drop a request silently after
		// MaxDeliver. The agent counts deliveries itself and ends a request
		// delivered too often with a Failed status instead.
		MaxDeliver: -1,
	}
}

// SameConsumer reports whether have, a consumer's configuration as the
// server reports it, is want: every field want sets is equal, and a field
// want leaves unset may hold whatever default the server filled in. No
// list of fields to keep in step with ConsumerConfig.
func SameConsumer(have, want jetstream.ConsumerConfig) bool {
	h, w := reflect.ValueOf(&have).Elem(), reflect.ValueOf(&want).Elem()
	for i := range w.NumField() {
		if w.Field(i).IsZero() {
			w.Field(i).Set(h.Field(i))
		}
	}
	return reflect.DeepEqual(have, want)
}
