package intake_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/memstore"
	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/agent/query"
	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

const cluster = "c1"

// faultyStore is internal/testkit/memstore, the one in-memory store, behind
// the faults these tests inject; it counts every Apply the intake made,
// including the ones a fault answered, so that what is counted is what the
// intake asked.
type faultyStore struct {
	*memstore.Store

	mu    sync.Mutex
	calls int
	// block, if set, makes Apply wait for ctx (an apply in flight at shutdown)
	block chan struct{}
	// fail, if non-empty, is returned (and popped) by the next Applies
	fail []error
	// lie, if > 0, makes that many Applies report a duplicate with no
	// record and no error (client-go's retry helper did that on ctx errors)
	lie int
	// slow, if set, is how long each Apply works (a throttled API server)
	slow time.Duration
}

func newStore() *faultyStore { return &faultyStore{Store: memstore.New()} }

// failNext makes the next len(errs) Applies return errs, in order.
func (s *faultyStore) failNext(errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, errs...)
}

// lieNext makes the next n Applies report a duplicate with no record.
func (s *faultyStore) lieNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lie = n
}

// slowDown makes every Apply take d.
func (s *faultyStore) slowDown(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slow = d
}

// blockApplies makes every Apply wait for its ctx; the returned channel
// receives once an Apply is waiting.
func (s *faultyStore) blockApplies() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block = make(chan struct{}, 1)
	return s.block
}

// unblock lets later Applies through (the one waiting still waits for its ctx).
func (s *faultyStore) unblock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block = nil
}

func (s *faultyStore) Apply(ctx context.Context, ch connection.Change) (connection.Connection, bool, error) {
	s.mu.Lock()
	s.calls++
	block, slow := s.block, s.slow
	var fail error
	if len(s.fail) > 0 {
		fail, s.fail = s.fail[0], s.fail[1:]
	}
	if s.lie > 0 {
		s.lie--
		s.mu.Unlock()
		return connection.Connection{}, false, nil
	}
	s.mu.Unlock()
	if block != nil {
		select {
		case block <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return connection.Connection{}, false, fmt.Errorf("apply interrupted: %w", ctx.Err())
	}
	if fail != nil {
		return connection.Connection{}, false, fail
	}
	if slow > 0 {
		select {
		case <-time.After(slow):
		case <-ctx.Done():
			return connection.Connection{}, false, ctx.Err()
		}
	}
	return s.Store.Apply(ctx, ch)
}

// finish plays sc-job: the connection's current generation succeeded.
func (s *faultyStore) finish(name string) {
	s.Update(connection.ObjectID(name), func(c *connection.Connection) {
		c.Status.Phase, c.Status.Reason, c.Status.ObservedGeneration = connection.PhaseSucceeded, "Rendered", c.Generation
	})
}

// snapshot is how many Applies the intake made and which request ids the
// store applied, in order.
func (s *faultyStore) snapshot() (calls int, applied []string) {
	s.mu.Lock()
	calls = s.calls
	s.mu.Unlock()
	return calls, s.Applied()
}

// env is one control plane, one cluster, and an agent that can be started
// and stopped.
type env struct {
	t     *testing.T
	srv   *devserver.Server
	cp    *controlplane.Client
	key   nkeys.KeyPair
	store *faultyStore
	logs  *devservertest.LogBuffer
	log   zerolog.Logger
	// secret is the credential value used throughout; it must never
	// appear in a log line, event or error.
	secret string
}

func newEnv(t *testing.T, o devserver.Options) *env {
	t.Helper()
	logs := &devservertest.LogBuffer{}
	o.Clusters = append(o.Clusters, cluster)
	o.Logger = logs.Logger()
	srv := devservertest.Start(t, o)
	key, err := nkeys.CreateCurveKeys()
	require.NoError(t, err)
	e := &env{t: t, srv: srv, key: key, store: newStore(), logs: logs, log: logs.Logger(),
		secret: fmt.Sprintf("cred-VALUE-%d", rand.Int64())}
	e.cp = devservertest.ControlPlane(t, srv, cluster, 3*time.Second)
	return e
}

// agent runs the agent's query service (for the public key) and intake
// on a fresh connection until the returned stop is called.
func (e *env) agent(withIntake bool, tweak ...func(*intake.Options)) (stop func(), nc *nats.Conn) {
	e.t.Helper()
	nc, js := devservertest.Agent(e.t, e.srv, cluster, e.log)
	pub, err := e.key.PublicKey()
	require.NoError(e.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ready := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		go func() {
			// Serve returns only at ctx end; readiness is a pubkey answer.
			_ = e.waitPubKey(ctx)
			close(ready)
		}()
		if err := query.Serve(ctx, nc, query.Options{Cluster: cluster, Reader: nopReader{}, PublicKey: pub, Logger: e.log}); err != nil {
			e.t.Errorf("query service: %v", err)
			cancel()
		}
	}()
	if withIntake {
		o := intake.Options{
			Cluster: cluster, Key: e.key, Store: e.store,
			Status:     statuspub.New(js, cluster, statuspub.WithLogger(e.log)),
			IsNotFound: record.IsNotFound,
			Logger:     e.log, RetryBase: 50 * time.Millisecond,
		}
		for _, f := range tweak {
			f(&o)
		}
		in, err := intake.New(js, o)
		require.NoError(e.t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(e.t, in.Run(ctx))
		}()
	}
	<-ready
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			nc.Close()
		})
	}
	e.t.Cleanup(stop)
	return stop, nc
}

func (e *env) waitPubKey(ctx context.Context) error {
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := e.cp.PublicKey(qctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return ctx.Err()
}

func (e *env) spec(name string) (connection.Spec, connection.Credentials) {
	key := "AZURE_STORAGEBLOB_CONNECTIONSTRING"
	return connection.Spec{
		Name:           name,
		Scope:          "default",
		TargetService:  connection.TargetService{Type: "storage-blob", ID: "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"},
		AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
		ClientType:     "none",
		Configurations: []connection.Configuration{{Name: key, Credential: true}},
	}, connection.Credentials{key: e.secret}
}

// statuses follows a connection's status subject from the start.
func (e *env) statuses(name string) <-chan protocol.StatusEvent {
	e.t.Helper()
	_, js := devservertest.AdminConn(e.t, e.srv)
	cons, err := js.OrderedConsumer(context.Background(), protocol.StatusStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{protocol.StatusSubject(cluster, connection.ObjectID(name))},
	})
	require.NoError(e.t, err)
	it, err := cons.Messages()
	require.NoError(e.t, err)
	e.t.Cleanup(it.Stop)
	out := make(chan protocol.StatusEvent, 64)
	go func() {
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err != nil {
				continue
			}
			var ev protocol.StatusEvent
			if protocol.Decode(m.Data(), protocol.KindStatus, &ev) == nil {
				out <- ev
			}
		}
	}()
	return out
}

// await returns the first event matching pred.
func await(t *testing.T, ch <-chan protocol.StatusEvent, what string, pred func(protocol.StatusEvent) bool) protocol.StatusEvent {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev := <-ch:
			if pred(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no status event: %s", what)
		}
	}
}

// settled waits until the request stream holds nothing for the cluster and
// nothing is pending an ack: every request was acked or terminated.
func (e *env) settled() {
	e.t.Helper()
	_, js := devservertest.AdminConn(e.t, e.srv)
	require.Eventually(e.t, func() bool {
		ci, err := js.Consumer(context.Background(), protocol.RequestStream, protocol.ConsumerName(cluster))
		if err != nil {
			return false
		}
		info := ci.CachedInfo()
		return info.NumPending == 0 && info.NumAckPending == 0
	}, 15*time.Second, 20*time.Millisecond)
}

type nopReader struct{}

func (nopReader) List(context.Context) ([]connection.Connection, error) { return nil, nil }
func (nopReader) Get(context.Context, string) (connection.Connection, error) {
	return connection.Connection{}, record.ErrNotFound
}
func (nopReader) Validate(context.Context, connection.Connection) (protocol.ValidateResult, error) {
	return protocol.ValidateResult{}, nil
}
