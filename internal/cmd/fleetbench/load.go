package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// publishTimeout bounds one publish (and query) of the control plane's
// clients; a publish not acked in time is sent again with its id.
const publishTimeout = 10 * time.Second

// credentialKey is the one key each simulated connection carries.
const credentialKey = "AZURE_STORAGEBLOB_CONNECTIONSTRING"

// sent is one request's life as the control plane sees it.
type sent struct {
	id       string
	phase    string
	cluster  string
	name     string
	start    time.Time // before the first publish attempt
	acked    time.Time // the stream stored it
	final    time.Time // the first terminal status event
	phaseOut connection.Phase
	attempts int
	finals   int
	pubErr   error
}

func (s *sent) latency() time.Duration { return s.final.Sub(s.start) }

// bench is the control plane side: one controlplane.Client per cluster
// (each is one NATS connection, as scctl's is) and one watcher following
// every status event.
type bench struct {
	c       config
	cp      *controlPlane
	fleet   *simFleet
	log     zerolog.Logger
	clients map[string]*controlplane.Client
	keys    map[string]string
	names   []string
	rnd     *rand.Rand
	rndMu   sync.Mutex

	watchNC *nats.Conn
	watchJS jetstream.JetStream
	stopW   func()

	mu      sync.Mutex
	reqs    map[string]*sent
	order   []*sent
	seq     int
	queries []queryResult
	wg      sync.WaitGroup
}

type queryResult struct {
	verb string
	d    time.Duration
	err  error
}

func newBench(ctx context.Context, c config, cp *controlPlane, f *simFleet, log zerolog.Logger) (*bench, error) {
	b := &bench{c: c, cp: cp, fleet: f, log: log, clients: map[string]*controlplane.Client{}, keys: map[string]string{},
		rnd: rand.New(rand.NewPCG(c.Seed, c.Seed^0x5c)), reqs: map[string]*sent{}}
	for _, a := range f.agents {
		b.names = append(b.names, a.cluster)
	}
	// Sorted, so that the seeded choice of clusters repeats run to run.
	b.names = clusterNames(len(b.names))
	var mu sync.Mutex
	err := forEach(ctx, b.names, 32, func(ctx context.Context, cl string) error {
		o := controlplane.Options{URL: cp.urls(), Cluster: cl, Timeout: publishTimeout, CredsFile: cp.admin.CredsFile}
		if o.CredsFile == "" {
			o.User, o.Password = cp.admin.User, cp.admin.Password
		}
		cli, err := controlplane.Dial(ctx, o)
		if err != nil {
			return err
		}
		// The agent's key, asked once per cluster (controlplane caches
		// it): every agent answers a query before the clock starts.
		var pub string
		err = retry(ctx, 60*time.Second, func(ctx context.Context) error {
			var err error
			pub, err = cli.PublicKey(ctx)
			return err
		})
		if err != nil {
			cli.Close()
			return fmt.Errorf("agent of %s does not answer: %w", cl, err)
		}
		mu.Lock()
		b.clients[cl], b.keys[cl] = cli, pub
		mu.Unlock()
		return nil
	})
	if err != nil {
		b.close()
		return nil, err
	}
	if err := b.watch(ctx); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *bench) close() {
	if b.stopW != nil {
		b.stopW()
	}
	if b.watchNC != nil {
		b.watchNC.Close()
	}
	for _, cli := range b.clients {
		cli.Close()
	}
}

// watch follows every connection's status events (not heartbeats) from
// now on with one ordered consumer, as a control plane serving a fleet
// would, rather than one consumer per request the way scctl's Wait does;
// an ordered consumer resumes where it was after a node loss.
func (b *bench) watch(ctx context.Context) error {
	nc, js, err := b.cp.adminConn("fleetbench watcher")
	if err != nil {
		return err
	}
	b.watchNC, b.watchJS = nc, js
	cons, err := js.OrderedConsumer(ctx, protocol.StatusStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{protocol.StatusSubject("*", "*")},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("status watcher: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("status watcher: %w", err)
	}
	done := make(chan struct{})
	b.stopW = func() { it.Stop(); <-done }
	go func() {
		defer close(done)
		for {
			msg, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err != nil {
				continue // missed heartbeats while a node is down; the consumer resets itself
			}
			now := time.Now()
			var ev protocol.StatusEvent
			if protocol.Decode(msg.Data(), protocol.KindStatus, &ev) != nil {
				continue
			}
			switch ev.Phase {
			case connection.PhaseSucceeded, connection.PhaseFailed, connection.PhaseDeleted:
			default:
				continue
			}
			b.mu.Lock()
			if s := b.reqs[ev.RequestID]; s != nil {
				s.finals++
				if s.final.IsZero() {
					s.final, s.phaseOut = now, ev.Phase
				}
			}
			b.mu.Unlock()
		}
	}()
	return nil
}

// pick is a random cluster, from the seeded source.
func (b *bench) pick() string {
	b.rndMu.Lock()
	defer b.rndMu.Unlock()
	return b.names[b.rnd.IntN(len(b.names))]
}

// send creates one new connection on a random cluster, retrying the
// publish with the same request id (Nats-Msg-Id) until the stream has it:
// a publish whose ack was lost in a node kill is stored once.
func (b *bench) send(ctx context.Context, phase string) {
	cl := b.pick()
	b.mu.Lock()
	b.seq++
	s := &sent{id: controlplane.NewRequestID(), phase: phase, cluster: cl, name: fmt.Sprintf("fb_%06d", b.seq)}
	b.mu.Unlock()
	spec := connection.Spec{
		Name: s.name, Scope: "default",
		TargetService:  connection.TargetService{Type: "storage-blob", ID: "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/fleet"},
		AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
		ClientType:     "none",
		Configurations: []connection.Configuration{{Name: credentialKey, Credential: true}},
	}
	sealed, err := protocol.Seal(connection.Credentials{credentialKey: "fleet-bench-" + s.name}, b.keys[cl])
	if err != nil {
		s.pubErr = err
		b.track(s)
		return
	}
	req := protocol.Request{Header: protocol.NewHeader(protocol.KindRequest), ID: s.id, Cluster: cl, Op: protocol.OpCreate,
		Connection: spec, Credentials: sealed}
	s.start = time.Now()
	req.SentAt = s.start.UTC()
	b.track(s)
	cli := b.clients[cl]
	// Backing off, so that retries do not add to the load of a cluster
	// that is slow to answer.
	wait := 250 * time.Millisecond
	for {
		s.attempts++
		_, err := cli.Publish(ctx, req)
		if err == nil {
			b.mu.Lock()
			s.acked = time.Now()
			b.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			b.mu.Lock()
			s.pubErr = err
			b.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 4*time.Second)
	}
}

func (b *bench) track(s *sent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reqs[s.id] = s
	b.order = append(b.order, s)
}

// paced sends at rate per second for d, each request in its own goroutine
// so that a slow publish never delays the next; it calls at(t) once per
// tick with the time since the start.
func (b *bench) paced(ctx context.Context, phase string, d time.Duration, at func(time.Duration)) {
	interval := time.Duration(float64(time.Second) / b.c.Rate)
	start := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; ; {
		since := time.Since(start)
		if since >= d || ctx.Err() != nil {
			return
		}
		if at != nil {
			at(since)
		}
		// Catch up after a stall instead of drifting below the rate.
		for due := int(since.Seconds()*b.c.Rate) + 1; n < due; n++ {
			b.wg.Go(func() { b.send(ctx, phase) })
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// queriesWhile asks show (a connection that exists) or list of random
// clusters at rate per second until stop is closed.
func (b *bench) queriesWhile(ctx context.Context, rate float64, stop <-chan struct{}) {
	if rate <= 0 {
		return
	}
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
		q := protocol.Query{Verb: protocol.VerbList, Limit: 50}
		cl := b.pick()
		if i%2 == 0 {
			if s := b.someFinished(); s != nil {
				cl, q = s.cluster, protocol.Query{Verb: protocol.VerbShow, Connection: s.name}
			}
		}
		b.wg.Go(func() {
			start := time.Now()
			var out json.RawMessage
			err := b.clients[cl].Query(ctx, q, &out)
			b.mu.Lock()
			b.queries = append(b.queries, queryResult{verb: string(q.Verb), d: time.Since(start), err: err})
			b.mu.Unlock()
		})
	}
}

func (b *bench) someFinished() *sent {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.order) - 1; i >= 0 && i >= len(b.order)-200; i-- {
		if s := b.order[i]; !s.final.IsZero() {
			return s
		}
	}
	return nil
}

// settle waits until every request of the phases has its final status,
// or grace passes.
func (b *bench) settle(ctx context.Context, phases ...string) {
	b.wg.Wait()
	deadline := time.Now().Add(b.c.Grace)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if b.pending(phases...) == 0 {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (b *bench) pending(phases ...string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, s := range b.order {
		if s.final.IsZero() && slices.Contains(phases, s.phase) {
			n++
		}
	}
	return n
}

// phase copies the requests of phase.
func (b *bench) phase(name string) []sent {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []sent
	for _, s := range b.order {
		if s.phase == name {
			out = append(out, *s)
		}
	}
	return out
}
