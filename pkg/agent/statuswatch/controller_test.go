package statuswatch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/util/workqueue"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

const (
	cluster = "c1"
	ns      = records.Namespace
)

func conn(name string, phase connection.Phase, gen int64, requestID string) connection.Connection {
	return connection.Connection{
		Spec:       connection.Spec{Name: name, Scope: "team-a"},
		Generation: gen,
		Status:     connection.Status{Phase: phase, LastRequestID: requestID, ObservedGeneration: gen},
	}
}

// flakyPublisher fails the first n publishes, then delegates: a NATS outage
// as the watch sees it.
type flakyPublisher struct {
	mu    sync.Mutex
	fails int
	calls int
	next  Publisher
}

func (p *flakyPublisher) Publish(ctx context.Context, ev protocol.StatusEvent) error {
	p.mu.Lock()
	p.calls++
	fail := p.calls <= p.fails
	p.mu.Unlock()
	if fail {
		return errors.New("nats: no responders available for request")
	}
	return p.next.Publish(ctx, ev)
}

type env struct {
	t       *testing.T
	c       *Controller
	client  *fake.Clientset
	events  jetstream.Consumer
	admin   jetstream.JetStream
	logs    *devservertest.LogBuffer
	metrics *health.Metrics
	stop    func() // stops the watch and waits for it
}

// start runs the watch against a real embedded NATS server with JetStream
// and a fake API server holding objs.
func start(t *testing.T, pub func(Publisher) Publisher, objs ...runtime.Object) *env {
	t.Helper()
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{cluster}})
	_, js := devservertest.Agent(t, srv, cluster, zerolog.Nop())
	_, admin := devservertest.AdminConn(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cons, err := admin.OrderedConsumer(ctx, protocol.StatusStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{protocol.StatusSubjectAll(cluster)},
	})
	require.NoError(t, err)

	e := &env{t: t, client: fake.NewClientset(objs...), events: cons, admin: admin, logs: &devservertest.LogBuffer{}, metrics: health.NewMetrics()}
	records.HonourFinalizers(e.client, time.Now)
	honourReleasePatch(e.client)
	var p Publisher = statuspub.New(js, cluster)
	if pub != nil {
		p = pub(p)
	}
	// The leader's records informer: records cached without their data,
	// each version's summary attached.
	factory := launcher.NewRecordsFactory(e.client, ns, 0)
	c, err := New(Deps{
		Cluster: cluster, Namespace: ns, Client: e.client, Records: factory.Core().V1().ConfigMaps(),
		Publisher: p, Metrics: e.metrics, Log: e.logs.Logger(),
		RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[string](10*time.Millisecond, 100*time.Millisecond),
	})
	require.NoError(t, err)
	e.c = c
	records.Start(t, e.client, 1, ctx.Done(), factory)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
			factory.Shutdown()
		})
	}
	t.Cleanup(e.stop)
	return e
}

func (e *env) next() protocol.StatusEvent {
	e.t.Helper()
	msg, err := e.events.Next(jetstream.FetchMaxWait(10 * time.Second))
	require.NoError(e.t, err, "no status event published")
	var ev protocol.StatusEvent
	require.NoError(e.t, protocol.Decode(msg.Data(), protocol.KindStatus, &ev))
	assert.Equal(e.t, protocol.StatusSubject(cluster, ev.ObjectID), msg.Subject())
	return ev
}

func (e *env) update(c connection.Connection) {
	e.t.Helper()
	cm := records.ConfigMap(e.t, c)
	cur, err := e.client.CoreV1().ConfigMaps(ns).Get(context.Background(), cm.Name, metav1.GetOptions{})
	require.NoError(e.t, err)
	cur.Data = cm.Data
	_, err = e.client.CoreV1().ConfigMaps(ns).Update(context.Background(), cur, metav1.UpdateOptions{})
	require.NoError(e.t, err)
}

func TestEveryRecordIsPublishedOnStart(t *testing.T) {
	e := start(t, nil,
		records.ConfigMap(t, conn("blob1", connection.PhaseSucceeded, 2, "req-2")),
		records.ConfigMap(t, conn("My_Db", connection.PhaseFailed, 1, "req-9")),
	)
	got := map[string]protocol.StatusEvent{}
	for range 2 {
		ev := e.next()
		got[ev.Connection] = ev
	}
	assert.Equal(t, connection.PhaseSucceeded, got["blob1"].Phase)
	assert.Equal(t, int64(2), got["blob1"].Generation)
	assert.Equal(t, "req-2", got["blob1"].RequestID)
	assert.Equal(t, connection.ObjectID("My_Db"), got["My_Db"].ObjectID)
	assert.Equal(t, connection.PhaseFailed, got["My_Db"].Phase)
	assert.Equal(t, cluster, got["My_Db"].Cluster)
}

func TestPhaseChangesArePublishedAndNoOpUpdatesAreNot(t *testing.T) {
	c := conn("blob1", connection.PhasePending, 1, "req-1")
	e := start(t, nil, records.ConfigMap(t, c))
	assert.Equal(t, connection.PhasePending, e.next().Phase)

	c.Status.Phase = connection.PhaseRunning
	e.update(c)
	assert.Equal(t, connection.PhaseRunning, e.next().Phase)

	// Only the timestamp moves: nothing for the control plane.
	c.Status.UpdatedAt = time.Now().UTC()
	e.update(c)

	c.Status.Phase, c.Status.Reason = connection.PhaseFailed, "SecretIsOwned"
	c.Status.Message = "Secret team-a/sc-blob1-secret exists and is not managed by sc-extension"
	e.update(c)
	ev := e.next()
	assert.Equal(t, connection.PhaseFailed, ev.Phase, "the timestamp-only update published nothing")
	assert.Equal(t, "SecretIsOwned", ev.Reason)
	assert.Equal(t, c.Status.Message, ev.Message)

	// A new request for the same connection (generation 2) while it is
	// still Failed is a change the control plane waits for.
	c.Generation, c.Status.LastRequestID, c.Status.Phase, c.Status.Reason = 2, "req-2", connection.PhasePending, ""
	e.update(c)
	ev = e.next()
	assert.Equal(t, int64(2), ev.Generation)
	assert.Equal(t, "req-2", ev.RequestID)
}

func TestDeletedRecordPublishesDeleted(t *testing.T) {
	c := conn("blob1", connection.PhasePending, 3, "req-3")
	c.Deletion = &connection.Deletion{RequestID: "req-del"}
	e := start(t, nil, records.ConfigMap(t, c))
	e.next()

	require.NoError(t, e.client.CoreV1().ConfigMaps(ns).Delete(context.Background(), connection.ConfigMapName("blob1"), metav1.DeleteOptions{}))
	ev := e.next()
	assert.Equal(t, connection.PhaseDeleted, ev.Phase)
	assert.Equal(t, "req-del", ev.RequestID, "the delete request's id, for scctl delete --wait")
	assert.Equal(t, "blob1", ev.ObjectID)
}

func TestPublishFailuresAreRetried(t *testing.T) {
	var flaky *flakyPublisher
	e := start(t, func(p Publisher) Publisher {
		flaky = &flakyPublisher{fails: 3, next: p}
		return flaky
	}, records.ConfigMap(t, conn("blob1", connection.PhaseSucceeded, 1, "req-1")))

	ev := e.next()
	assert.Equal(t, connection.PhaseSucceeded, ev.Phase)
	flaky.mu.Lock()
	assert.Equal(t, 4, flaky.calls, "three failures, then success")
	flaky.mu.Unlock()
	assert.Contains(t, e.logs.String(), "no responders available")
}

func TestNewRejectsMissingDependencies(t *testing.T) {
	_, err := New(Deps{Cluster: cluster})
	require.ErrorIs(t, err, ErrInvalidDeps)
}

// gatedPublisher holds the first publish until released: a record deleted
// while its last status is still being published.
type gatedPublisher struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
	next    Publisher
}

func (p *gatedPublisher) Publish(ctx context.Context, ev protocol.StatusEvent) error {
	first := false
	p.once.Do(func() { first = true })
	if first {
		close(p.entered)
		<-p.release
	}
	return p.next.Publish(ctx, ev)
}

func TestDeleteDuringPublishIsStillReported(t *testing.T) {
	gate := &gatedPublisher{entered: make(chan struct{}), release: make(chan struct{})}
	e := start(t, func(p Publisher) Publisher { gate.next = p; return gate },
		records.ConfigMap(t, conn("blob1", connection.PhaseSucceeded, 1, "req-1")))
	<-gate.entered
	require.NoError(t, e.client.CoreV1().ConfigMaps(ns).Delete(context.Background(), connection.ConfigMapName("blob1"), metav1.DeleteOptions{}))
	close(gate.release)

	assert.Equal(t, connection.PhaseSucceeded, e.next().Phase)
	assert.Equal(t, connection.PhaseDeleted, e.next().Phase)
}
