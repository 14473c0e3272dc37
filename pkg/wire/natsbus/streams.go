package natsbus

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Stream and consumer tuning, chosen here once (see docs/protocol.md).
const (
	// RequestDuplicateWindow is how long the server remembers a request id
	// (Nats-Msg-Id): a control plane that retries a publish within it
	// stores the request once. Later re-sends are caught by the agent,
	// which remembers applied ids per connection.
	RequestDuplicateWindow = 10 * time.Minute
	// RequestMaxAge drops requests no agent picked up within a week: a
	// create that lands weeks late would surprise more than it helps.
	RequestMaxAge = 7 * 24 * time.Hour
	// StatusPerSubject keeps the last few events of each connection so that
	// a waiter that starts late still finds its request's outcome.
	StatusPerSubject = 10
	// StatusDuplicateWindow drops the same status event published twice
	// (intake and the informer both see a Pending) within it.
	StatusDuplicateWindow = 2 * time.Minute
	// DefaultAckWait is how long the server waits for an ack before
	// redelivering; the agent sends InProgress well within it while a slow
	// apply runs, so it only matters when an agent dies mid-request.
	DefaultAckWait = 30 * time.Second
	// maxMsgSize is NATS' default max payload; protocol.MaxMessageBytes is
	// enforced by the agent, which can then report the rejection.
	maxMsgSize = 1 << 20
)

// RequestStreamConfig is the work queue of connection requests. WorkQueue
// retention: a request is deleted once its agent acks it, so a consumer
// that is ever re-created cannot replay old creates and deletes, and the
// store holds only outstanding work. File storage keeps unacked requests
// across a server restart.
func RequestStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        protocol.RequestStream,
		Description: "sc-extension connection requests, one subject per cluster",
		Subjects:    protocol.RequestStreamSubjects(),
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      RequestMaxAge,
		MaxMsgSize:  maxMsgSize,
		Duplicates:  RequestDuplicateWindow,
		Replicas:    1,
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
		MaxMsgsPerSubject: StatusPerSubject,
		MaxMsgSize:        maxMsgSize,
		Duplicates:        StatusDuplicateWindow,
		Replicas:          1,
	}
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
		// Redeliver forever: the server would drop a request silently after
		// MaxDeliver. The agent counts deliveries itself and ends a request
		// delivered too often with a Failed status instead.
		MaxDeliver: -1,
	}
}
