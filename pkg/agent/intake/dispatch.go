package intake

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// finishedMemory is how many finished stream sequences the dispatcher
// remembers, to recognise the redelivery of a request whose ack was lost.
// Beyond it the store's own request-id memory catches the duplicate.
const finishedMemory = 1024

// held is a delivered request the agent has not finished: queued behind
// its connection's earlier requests, being applied, or waiting to retry.
type held struct {
	seq    uint64    // stream sequence: the request's place in the cluster's order
	key    string    // the connection's object id; "seq/<n>" when no name can be read
	stored time.Time // when the stream stored it (the server's clock)
	taken  time.Time // when this agent took it (metrics.go)

	// guarded by dispatcher.mu: a redelivery replaces the message, since
	// the server counts deliveries by the newest one
	msg       jetstream.Msg
	delivered uint64

	// owned by the one worker handling key
	attempts int
	lastErr  string // the last transient error, as published in Pending
}

// dispatcher holds every request the agent has taken and not finished, one
// FIFO per connection in stream order, and tells the worker queue which
// connection has a request at the head of its FIFO. The workqueue never
// hands one key to two workers, so a connection's requests are applied one
// at a time and in order, while other connections' requests go ahead.
type dispatcher struct {
	log     zerolog.Logger
	add     func(key string) // the worker queue's Add
	metrics requestMetrics
	every   atomic.Int64 // keep-alive interval, nanoseconds

	mu       sync.Mutex
	keys     map[string][]*held // per connection, ascending seq
	bySeq    map[uint64]*held
	finished map[uint64]bool // seq → was terminated (else acked)
	order    []uint64        // finished seqs, oldest first
}

func newDispatcher(log zerolog.Logger) *dispatcher {
	return &dispatcher{log: log, keys: map[string][]*held{}, bySeq: map[uint64]*held{}, finished: map[uint64]bool{}}
}

// offer takes a delivered message. It never blocks on a worker.
func (d *dispatcher) offer(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery: it has no place in the order and no
		// ack subject worth answering.
		d.log.Warn().Err(err).Msg("message without JetStream metadata ignored")
		return
	}
	seq := md.Sequence.Stream
	d.mu.Lock()
	if h, ok := d.bySeq[seq]; ok {
		// The server gave up waiting (a keep-alive lost while
		// disconnected, or a re-created consumer): the request is
		// already queued or being applied; apply it once.
		h.msg, h.delivered = msg, md.NumDelivered
		d.mu.Unlock()
		d.log.Info().Uint64("seq", seq).Uint64("delivered", md.NumDelivered).Str("outcome", outcomeRedelivered).
			Msg("redelivery of a request already held; it is applied once")
		return
	}
	if terminated, ok := d.finished[seq]; ok {
		d.mu.Unlock()
		// The ack (or term) was lost; answer this delivery the same way.
		if terminated {
			err = msg.Term()
		} else {
			err = msg.Ack()
		}
		d.log.Info().Err(err).Uint64("seq", seq).Uint64("delivered", md.NumDelivered).Str("outcome", outcomeRedelivered).
			Msg("redelivery of a finished request; answered again")
		return
	}
	h := &held{seq: seq, key: keyOf(msg.Data(), seq), stored: md.Timestamp, taken: time.Now(), msg: msg, delivered: md.NumDelivered}
	q := d.keys[h.key]
	// Deliveries arrive in stream order, except a redelivery of a request
	// an earlier agent held; sort it in, but never ahead of the head,
	// which a worker may be applying.
	i := max(sort.Search(len(q), func(i int) bool { return q[i].seq > seq }), min(len(q), 1))
	d.keys[h.key] = slices.Insert(q, i, h)
	d.bySeq[seq] = h
	first := len(q) == 0
	d.mu.Unlock()
	d.metrics.taken()
	if first {
		// Otherwise the key is queued, being worked on or backing off,
		// and its worker re-adds it when the head is done; adding it now
		// would cut a retry's backoff short.
		d.add(h.key)
	}
}

// head is the request of key to apply next, or nil.
func (d *dispatcher) head(key string) *held {
	d.mu.Lock()
	defer d.mu.Unlock()
	if q := d.keys[key]; len(q) > 0 {
		return q[0]
	}
	return nil
}

// current is h's latest delivery.
func (d *dispatcher) current(h *held) (jetstream.Msg, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return h.msg, h.delivered
}

// finish forgets h (acked, or terminated) and queues its connection's next
// request.
func (d *dispatcher) finish(h *held, terminated bool) {
	d.mu.Lock()
	q := slices.DeleteFunc(d.keys[h.key], func(o *held) bool { return o == h })
	if len(q) == 0 {
		delete(d.keys, h.key)
	} else {
		d.keys[h.key] = q
	}
	delete(d.bySeq, h.seq)
	d.finished[h.seq] = terminated
	d.order = append(d.order, h.seq)
	if len(d.order) > finishedMemory {
		delete(d.finished, d.order[0])
		d.order = d.order[1:]
	}
	d.mu.Unlock()
	d.metrics.finished(h, terminated)
	if len(q) > 0 {
		d.add(h.key)
	}
}

// keepAlive tells the server, for every held request, that it is being
// worked on: a request waiting behind its connection's slow or retrying
// head must not be redelivered (to this agent, as a duplicate, or to
// another replica).
func (d *dispatcher) keepAlive(ctx context.Context) {
	every := time.Duration(d.every.Load())
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if now := time.Duration(d.every.Load()); now != every {
			every = now
			t.Reset(every)
		}
		d.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(d.bySeq))
		for _, h := range d.bySeq {
			msgs = append(msgs, h.msg)
		}
		d.mu.Unlock()
		for _, m := range msgs {
			// An error means it was answered meanwhile, or the
			// connection is down; either way there is nothing to do.
			_ = m.InProgress()
		}
	}
}

// handBack NAKs every held request, in stream order so that the server
// redelivers them in their order, and forgets them. Called once the workers
// and the consumer have stopped.
func (d *dispatcher) handBack() {
	d.mu.Lock()
	all := make([]*held, 0, len(d.bySeq))
	for _, h := range d.bySeq {
		all = append(all, h)
	}
	d.keys, d.bySeq = map[string][]*held{}, map[uint64]*held{}
	d.mu.Unlock()
	d.metrics.handedBack(len(all))
	if len(all) == 0 {
		return
	}
	slices.SortFunc(all, func(a, b *held) int { return cmp.Compare(a.seq, b.seq) })
	failed := 0
	for _, h := range all {
		if err := h.msg.Nak(); err != nil {
			failed++
		}
	}
	d.log.Info().Int("requests", len(all)).Int("nakFailed", failed).Str("outcome", outcomeInterrupted).
		Msg("held requests handed back for redelivery")
}

// keyOf is the ordering key of a request: its connection's object id, read
// leniently (the full decode and its rejection happen in the worker). A
// request without a readable name orders with nothing: it can only be
// rejected.
func keyOf(data []byte, seq uint64) string {
	var p struct {
		Connection struct {
			Name string `json:"name"`
		} `json:"connection"`
	}
	if json.Unmarshal(data, &p) != nil || p.Connection.Name == "" {
		return "seq/" + strconv.FormatUint(seq, 10)
	}
	return connection.ObjectID(p.Connection.Name)
}
