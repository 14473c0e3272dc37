package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/internal/testkit/memstore"
	"github.com/sc-extension/sc-extension/pkg/agent/heartbeat"
	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/agent/query"
	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// simStore is one simulated cluster below the intake: memstore in place of
// pkg/kube/store, and in place of sc-job and statuswatch (both need a
// Kubernetes API) a job that reports every accepted change as done right
// after intake's Pending event, through the real statuspub. It counts what
// the intake asks of it, per request id, for the lost/duplicated check.
type simStore struct {
	*memstore.Store
	cluster string
	status  *statuspub.Publisher
	bg      context.Context // the fleet's life, for outcomes published after intake returns
	jobs    *sync.WaitGroup

	mu      sync.Mutex
	outcome map[string]protocol.StatusEvent // by request id, published after its Pending
	calls   map[string]int                  // Apply calls per request id (deliveries reaching the store)
	applied map[string]int                  // Apply calls that stored the change
}

func newSimStore(ctx context.Context, jobs *sync.WaitGroup, cluster string, status *statuspub.Publisher) *simStore {
	return &simStore{Store: memstore.New(), cluster: cluster, status: status, bg: ctx, jobs: jobs,
		outcome: map[string]protocol.StatusEvent{}, calls: map[string]int{}, applied: map[string]int{}}
}

// Apply stores the change and plays sc-job: rendered at once.
func (s *simStore) Apply(ctx context.Context, ch connection.Change) (connection.Connection, bool, error) {
	c, applied, err := s.Store.Apply(ctx, ch)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[ch.RequestID]++
	if err != nil || !applied {
		return c, applied, err
	}
	s.applied[ch.RequestID]++
	id := c.Spec.ID()
	var ev protocol.StatusEvent
	if ch.Delete {
		s.Remove(id)
		ev = statuspub.Deleted(s.cluster, c)
	} else {
		done := c
		done.Status = connection.Status{Phase: connection.PhaseSucceeded, LastRequestID: ch.RequestID, ObservedGeneration: c.Generation,
			Seq: 1, Incarnation: ch.RequestID, UpdatedAt: time.Now().UTC(),
			Resources: []connection.ResourceRef{{Kind: "Secret", Namespace: c.Spec.Scope, Name: connection.SecretName(id)}}}
		s.Update(id, func(st *connection.Connection) { st.Status = done.Status })
		ev = statuspub.FromConnection(s.cluster, done)
	}
	s.outcome[ch.RequestID] = ev
	return c, true, nil
}

// Publish is intake's status publisher. After a request's Pending event
// (sent or not) the job's outcome follows, retried until the stream takes
// it, as statuswatch's workqueue retries a record's event: a status
// publish that fails during a node loss delays the outcome, it does not
// drop it.
func (s *simStore) Publish(ctx context.Context, ev protocol.StatusEvent) error {
	err := s.status.Publish(ctx, ev)
	if ev.Phase != connection.PhasePending {
		return err
	}
	s.mu.Lock()
	next, ok := s.outcome[ev.RequestID]
	delete(s.outcome, ev.RequestID)
	s.mu.Unlock()
	if ok {
		s.jobs.Go(func() { s.publishOutcome(next) })
	}
	return err
}

func (s *simStore) publishOutcome(ev protocol.StatusEvent) {
	ctx, cancel := context.WithTimeout(s.bg, 2*time.Minute)
	defer cancel()
	for wait := 250 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 5*time.Second) {
		if s.status.Publish(ctx, ev) == nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// Validate answers validate as a healthy cluster would.
func (s *simStore) Validate(_ context.Context, c connection.Connection) (protocol.ValidateResult, error) {
	return protocol.ValidateResult{Connection: c.Spec.Name, Valid: true}, nil
}

// counts copies the per-request counters.
func (s *simStore) counts() (calls, applied map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls, applied = make(map[string]int, len(s.calls)), make(map[string]int, len(s.applied))
	for k, v := range s.calls {
		calls[k] = v
	}
	for k, v := range s.applied {
		applied[k] = v
	}
	return calls, applied
}

// simAgent is one cluster's agent: the agent binary's NATS wiring
// (agent/run.go and lead.go) with the Kubernetes parts left out.
type simAgent struct {
	cluster string
	nc      *nats.Conn
	store   *simStore
	pub     string
}

// simFleet is every simulated cluster in this process.
type simFleet struct {
	agents  []*simAgent
	byName  map[string]*simAgent
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	logFile *os.File
}

// startFleet connects every agent and starts its intake, query responder
// and heartbeat; it returns once all of them are running.
func startFleet(ctx context.Context, c config, work string, cp *controlPlane, clusters []string, log zerolog.Logger) (*simFleet, error) {
	level, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	lf, err := os.Create(filepath.Join(work, "agents.log"))
	if err != nil {
		return nil, err
	}
	alog := zerolog.New(lf).Level(level).With().Timestamp().Logger()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &simFleet{byName: map[string]*simAgent{}, cancel: cancel, logFile: lf}
	var mu sync.Mutex
	err = forEach(ctx, clusters, 32, func(ctx context.Context, cl string) error {
		a, err := f.startAgent(runCtx, c, cp, cl, alog)
		if err != nil {
			return err
		}
		mu.Lock()
		f.agents = append(f.agents, a)
		f.byName[cl] = a
		mu.Unlock()
		return nil
	})
	if err != nil {
		f.stop()
		return nil, err
	}
	log.Debug().Int("agents", len(f.agents)).Msg("fleet started")
	return f, nil
}

func (f *simFleet) startAgent(ctx context.Context, c config, cp *controlPlane, cluster string, log zerolog.Logger) (*simAgent, error) {
	id := cp.agents[cluster]
	nc, js, err := natsbus.Connect(ctx, natsbus.Options{
		URL: cp.urls(), Cluster: cluster, User: id.User, Password: id.Password, CredsFile: id.CredsFile,
		Name: "sc-agent " + cluster, Logger: log, MaxReconnectWait: 2 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	key, err := nkeys.CreateCurveKeys()
	if err != nil {
		nc.Close()
		return nil, err
	}
	pub, err := key.PublicKey()
	if err != nil {
		nc.Close()
		return nil, err
	}
	alog := log.With().Str("cluster", cluster).Logger()
	store := newSimStore(ctx, &f.wg, cluster, statuspub.New(js, cluster, statuspub.WithLogger(alog)))
	in, err := intake.New(js, intake.Options{Cluster: cluster, Key: key, Store: store, Status: store,
		IsNotFound: record.IsNotFound, Logger: alog})
	if err != nil {
		nc.Close()
		return nil, err
	}
	a := &simAgent{cluster: cluster, nc: nc, store: store, pub: pub}
	f.wg.Go(func() {
		_ = query.Serve(ctx, nc, query.Options{Cluster: cluster, Reader: store, PublicKey: pub, IsNotFound: record.IsNotFound, Logger: alog})
	})
	f.wg.Go(func() { _ = in.Run(ctx) })
	f.wg.Go(func() {
		_ = heartbeat.Run(ctx, nc, heartbeat.Options{Cluster: cluster, Pod: "sim-" + cluster, Interval: c.Heartbeat, Logger: alog,
			State: func() heartbeat.State {
				conns, _ := store.List(ctx)
				var phases map[string]int
				for _, c := range conns {
					if phases == nil {
						phases = map[string]int{}
					}
					phases[string(c.Status.Phase)]++
				}
				return heartbeat.State{Leader: true, Ready: nc.IsConnected(), Connections: len(conns), Phases: phases}
			}})
	})
	return a, nil
}

// stop ends every agent as SIGTERM would: the intake hands back what it
// holds, the query subscription drains.
func (f *simFleet) stop() {
	f.cancel()
	f.wg.Wait()
	for _, a := range f.agents {
		a.nc.Close()
	}
	// The log file stays open: nats.go reports a closed connection from
	// its own goroutine, after Close returns.
}

// counts sums every agent's per-request counters.
func (f *simFleet) counts() (calls, applied map[string]int) {
	calls, applied = map[string]int{}, map[string]int{}
	for _, a := range f.agents {
		c, ap := a.store.counts()
		for k, v := range c {
			calls[k] += v
		}
		for k, v := range ap {
			applied[k] += v
		}
	}
	return calls, applied
}
