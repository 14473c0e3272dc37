package drift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/inspect"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

const (
	agentNS        = "sc-system"
	annotationHash = "servicelinker.sc-extension.io/data-hash"
)

var errNotFound = errors.New("connection not found")

// fakeStore is pkg/kube/store as drift uses it: connections by id, and a log of
// MarkPending calls.
type fakeStore struct {
	mu      sync.Mutex
	conns   map[string]connection.Connection
	marked  []markCall
	failGet error
	failN   int // MarkPending fails this many times first
	markedC chan markCall
}

type markCall struct{ ID, Reason, Message string }

func newStore(conns ...connection.Connection) *fakeStore {
	s := &fakeStore{conns: map[string]connection.Connection{}, markedC: make(chan markCall, 16)}
	for _, c := range conns {
		s.conns[c.Spec.ID()] = c
	}
	return s
}

func (s *fakeStore) Get(_ context.Context, id string) (connection.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failGet != nil {
		return connection.Connection{}, s.failGet
	}
	c, ok := s.conns[id]
	if !ok {
		return connection.Connection{}, fmt.Errorf("get %s: %w", id, errNotFound)
	}
	return c, nil
}

func (s *fakeStore) MarkPending(_ context.Context, id, reason, message string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failN > 0 {
		s.failN--
		return errors.New("configmaps \"sc-conn-x\": the object has been modified")
	}
	c, ok := s.conns[id]
	if !ok {
		return fmt.Errorf("mark %s: %w", id, errNotFound)
	}
	c.Status.Phase, c.Status.Reason, c.Status.Message = connection.PhasePending, reason, message
	s.conns[id] = c
	call := markCall{ID: id, Reason: reason, Message: message}
	s.marked = append(s.marked, call)
	s.markedC <- call
	return nil
}

func (s *fakeStore) calls() []markCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]markCall(nil), s.marked...)
}

// succeeded is a settled connection that rendered a Secret (and, with a
// client id, a ServiceAccount) into team-a.
func succeeded(name, clientID string) connection.Connection {
	id := connection.ObjectID(name)
	c := connection.Connection{
		Spec:       connection.Spec{Name: name, Scope: "team-a"},
		Generation: 1,
		Status: connection.Status{Phase: connection.PhaseSucceeded, ObservedGeneration: 1, Resources: []connection.ResourceRef{
			{Kind: KindSecret, Namespace: "team-a", Name: connection.SecretName(id)},
		}},
	}
	if clientID != "" {
		c.Status.Resources = append(c.Status.Resources, connection.ResourceRef{
			Kind: KindServiceAccount, Namespace: "team-a", Name: connection.ServiceAccountName(clientID)})
	}
	return c
}

// recordCM keeps the connection as JSON; drift reads records only through its Decoder.
func recordCM(c connection.Connection) *corev1.ConfigMap {
	b, _ := json.Marshal(c)
	id := c.Spec.ID()
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: connection.ConfigMapName(id), ResourceVersion: "1",
			Labels: map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: id}},
		Data: map[string]string{"connection": string(b)},
	}
}

func testDecode(cm *corev1.ConfigMap) (connection.Connection, error) {
	var c connection.Connection
	err := json.Unmarshal([]byte(cm.Data["connection"]), &c)
	return c, err
}

func renderedSecret(id, credential string) *corev1.Secret {
	data := map[string][]byte{
		"AZURE_STORAGEBLOB_CONNECTIONSTRING": []byte(credential),
		"AZURE_STORAGEBLOB_RESOURCEENDPOINT": []byte("https://acct.blob.core.windows.net/"),
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: connection.SecretName(id), ResourceVersion: "1",
			Labels:      map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: id},
			Annotations: map[string]string{annotationHash: render.DataHash(data)}},
		Data: data,
	}
}

func renderedSA(clientID string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: connection.ServiceAccountName(clientID), ResourceVersion: "1",
			Labels:      map[string]string{connection.LabelManagedBy: connection.ManagedByValue},
			Annotations: map[string]string{"azure.workload.identity/client-id": clientID}},
	}
	sa.Annotations[annotationHash] = render.ServiceAccountHash(sa)
	return sa
}

func credValue() string { return fmt.Sprintf("cred-VALUE-%d", rand.Uint64()) }

type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	store    *fakeStore
	recorder *record.FakeRecorder
	metrics  *health.Metrics
	logs     *devservertest.LogBuffer
	factory  informers.SharedInformerFactory
	records  informers.SharedInformerFactory
	c        *Controller
}

// newFixture builds the controller; objs go into the fake API server and,
// unless the fixture is started, straight into the informer indexers.
func newFixture(t *testing.T, store *fakeStore, scope Scope, objs ...runtime.Object) *fixture {
	t.Helper()
	f := &fixture{t: t, client: fake.NewClientset(objs...), store: store,
		recorder: record.NewFakeRecorder(32), metrics: health.NewMetrics(), logs: &devservertest.LogBuffer{}}
	f.records = informers.NewSharedInformerFactoryWithOptions(f.client, 0, informers.WithNamespace(agentNS))
	factories := NewFactories(f.client, scope, 0)
	f.factory = factories[0]
	c, err := New(Deps{
		Namespace: agentNS, Records: f.records.Core().V1().ConfigMaps(), Factories: factories, Scope: scope,
		Decode: testDecode, DriftOf: inspect.DriftOf, Store: store,
		IsNotFound: func(err error) bool { return errors.Is(err, errNotFound) },
		Recorder:   f.recorder, Metrics: f.metrics, Log: f.logs.Logger(),
	})
	require.NoError(t, err)
	f.c = c
	t.Cleanup(c.queue.ShutDown)
	return f
}

// index puts objects into the caches without starting the informers.
func (f *fixture) index(objs ...runtime.Object) {
	f.t.Helper()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.ConfigMap:
			err = f.records.Core().V1().ConfigMaps().Informer().GetIndexer().Add(o)
		case *corev1.Secret:
			err = f.factory.Core().V1().Secrets().Informer().GetIndexer().Add(o)
		case *corev1.ServiceAccount:
			err = f.factory.Core().V1().ServiceAccounts().Informer().GetIndexer().Add(o)
		}
		require.NoError(f.t, err)
	}
}

// run starts the informers and the controller on the fake API server and
// returns once all three watches are established: the fake API server does
// not replay changes made between an informer's list and its watch.
func (f *fixture) run() {
	watching := make(chan string, 8)
	f.client.PrependWatchReactor("*", func(a core.Action) (bool, watch.Interface, error) {
		w, err := f.client.Tracker().Watch(a.GetResource(), a.GetNamespace())
		if err != nil {
			return false, nil, err
		}
		select {
		case watching <- a.GetResource().Resource:
		default: // a re-watch after the test stopped counting
		}
		return true, w, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	f.records.Start(ctx.Done())
	f.factory.Start(ctx.Done())
	for range 3 {
		select {
		case <-watching:
		case <-time.After(10 * time.Second):
			f.t.Fatal("informers did not start watching")
		}
	}
	done := make(chan error, 1)
	go func() { done <- f.c.Run(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		require.NoError(f.t, <-done)
		f.records.Shutdown()
		f.factory.Shutdown()
	})
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// writes lists the client actions other than the informers' list and watch.
func (f *fixture) writes() []string {
	var out []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource+" "+a.GetNamespace())
	}
	return out
}
