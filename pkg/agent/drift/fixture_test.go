package drift

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"
	k8srecord "k8s.io/client-go/tools/record"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/kube/inspect"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// anywhere is the policy of an agent with no watch or denied list.
var anywhere = namespaces.Policy{Release: agentNS}

const (
	agentNS        = records.Namespace
	annotationHash = "servicelinker.sc-extension.io/data-hash"
)

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
		return connection.Connection{}, fmt.Errorf("get %s: %w", id, record.ErrNotFound)
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
		return fmt.Errorf("mark %s: %w", id, record.ErrNotFound)
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

// recordCM is c's record as pkg/kube/store writes it.
func recordCM(t testing.TB, c connection.Connection) *corev1.ConfigMap {
	return records.ConfigMap(t, c)
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
	t testing.TB
	// client is the typed API: the records' ConfigMaps and the objects
	// drift reads in full. meta serves the same Secrets and
	// ServiceAccounts as metadata, as one API server would.
	client   *fake.Clientset
	meta     *metadatafake.FakeMetadataClient
	store    *fakeStore
	recorder *k8srecord.FakeRecorder
	metrics  *health.Metrics
	logs     *devservertest.LogBuffer
	inf      *Informers
	records  informers.SharedInformerFactory
	// versions is the records' decoded-version cache, built apart from
	// the controller and handed to it as agent/lead.go shares one.
	versions *recordcache.Cache
	c        *Controller
}

// newFixture builds the controller; objs go into the fake API server and,
// unless the fixture is started, straight into the informer indexers.
func newFixture(t testing.TB, store *fakeStore, policy namespaces.Policy, objs ...runtime.Object) *fixture {
	t.Helper()
	scheme := metadatafake.NewTestScheme()
	require.NoError(t, metav1.AddMetaToScheme(scheme))
	f := &fixture{t: t, client: fake.NewClientset(), meta: metadatafake.NewSimpleMetadataClient(scheme), store: store,
		recorder: k8srecord.NewFakeRecorder(32), metrics: health.NewMetrics(), logs: &devservertest.LogBuffer{}}
	for _, o := range objs {
		f.create(o)
	}
	f.records = informers.NewSharedInformerFactoryWithOptions(f.client, 0, informers.WithNamespace(agentNS))
	f.inf = NewInformers(f.meta, policy, 0)
	versions, err := recordcache.New(f.records.Core().V1().ConfigMaps().Informer(), f.logs.Logger())
	require.NoError(t, err)
	f.versions = versions
	c, err := New(Deps{
		Namespace: agentNS, Records: f.records.Core().V1().ConfigMaps(), Versions: versions, Informers: f.inf, Client: f.client, Policy: policy,
		DriftOf: inspect.DriftOf, NotOurs: inspect.NotOurs, Store: store,
		Recorder: f.recorder, Metrics: f.metrics, Log: f.logs.Logger(),
	})
	require.NoError(t, err)
	f.c = c
	t.Cleanup(c.worker.Queue().ShutDown)
	return f
}

// resourceFor is the resource a test object is served under.
func resourceFor(t testing.TB, o runtime.Object) schema.GroupVersionResource {
	switch o.(type) {
	case *corev1.Secret:
		return secretsResource
	case *corev1.ServiceAccount:
		return accountsResource
	case *corev1.ConfigMap:
		return corev1.SchemeGroupVersion.WithResource("configmaps")
	}
	t.Fatalf("no resource for %T", o)
	return schema.GroupVersionResource{}
}

// partial is o as the metadata API serves it.
func partial(t testing.TB, o runtime.Object) *metav1.PartialObjectMetadata {
	t.Helper()
	switch x := o.(type) {
	case *corev1.Secret:
		return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: KindSecret}, ObjectMeta: *x.ObjectMeta.DeepCopy()}
	case *corev1.ServiceAccount:
		return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: KindServiceAccount}, ObjectMeta: *x.ObjectMeta.DeepCopy()}
	}
	t.Fatalf("no metadata for %T", o)
	return nil
}

// create, update and remove change the fake API server through its
// trackers, so the clients record only the controller's own actions.
func (f *fixture) create(o runtime.Object) {
	f.t.Helper()
	require.NoError(f.t, f.client.Tracker().Add(o))
	if _, ok := o.(*corev1.ConfigMap); !ok {
		require.NoError(f.t, f.meta.Tracker().Add(partial(f.t, o)))
	}
}

func (f *fixture) update(o runtime.Object) {
	f.t.Helper()
	m, err := meta.Accessor(o)
	require.NoError(f.t, err)
	gvr := resourceFor(f.t, o)
	require.NoError(f.t, f.client.Tracker().Update(gvr, o, m.GetNamespace()))
	require.NoError(f.t, f.meta.Tracker().Update(gvr, partial(f.t, o), m.GetNamespace()))
}

func (f *fixture) remove(kind, namespace, name string) {
	f.t.Helper()
	gvr := resourceOf(kind).WithVersion("v1")
	require.NoError(f.t, f.client.Tracker().Delete(gvr, namespace, name))
	require.NoError(f.t, f.meta.Tracker().Delete(gvr, namespace, name))
}

// index puts objects into the caches without starting the informers: a
// record into the records informer; a Secret or ServiceAccount into drift's
// metadata cache (as its transform keeps it) and, in full, into the API
// server drift reads it from.
func (f *fixture) index(objs ...runtime.Object) {
	f.t.Helper()
	for _, o := range objs {
		if _, ok := o.(*corev1.ConfigMap); ok {
			records.Index(f.t, f.records, o)
			continue
		}
		m, err := meta.Accessor(o)
		require.NoError(f.t, err)
		gvr := resourceFor(f.t, o)
		if _, err := f.client.Tracker().Get(gvr, m.GetNamespace(), m.GetName()); err == nil {
			require.NoError(f.t, f.client.Tracker().Update(gvr, o, m.GetNamespace()))
		} else {
			require.NoError(f.t, f.client.Tracker().Add(o))
		}
		kept, err := keepIdentity(partial(f.t, o))
		require.NoError(f.t, err)
		for _, kind := range []string{KindSecret, KindServiceAccount} {
			if resourceOf(kind) == gvr.GroupResource() {
				require.NoError(f.t, f.inf.byKind(kind)[0].Informer().GetIndexer().Update(kept))
			}
		}
	}
}

// run starts the informers and the controller on the fake API server and
// returns once all three watches are established: the fake API server does
// not replay changes made between an informer's list and its watch.
func (f *fixture) run() {
	ctx, cancel := context.WithCancel(context.Background())
	metaWatches := make(chan string, 2*len(f.inf.factories))
	f.meta.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := f.meta.Tracker().Watch(a.GetResource(), a.GetNamespace())
		if err != nil {
			return false, nil, err
		}
		select {
		case metaWatches <- a.GetResource().Resource:
		default: // a re-watch after the test stopped counting
		}
		return true, w, nil
	})
	f.inf.Start(ctx.Done())
	records.Start(f.t, f.client, 1, ctx.Done(), f.records) // records
	for range cap(metaWatches) {                           // Secrets and ServiceAccounts
		select {
		case <-metaWatches:
		case <-time.After(10 * time.Second):
			f.t.Fatal("drift's informers did not start watching")
		}
	}
	done := make(chan error, 1)
	go func() { done <- f.c.Run(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		require.NoError(f.t, <-done)
		f.records.Shutdown()
		f.inf.Shutdown()
	})
}

func (f *fixture) events() []string { return fakeactions.Events(f.recorder) }

// reads lists what the controller did through the typed client: the
// records informer's list and watch left out.
func (f *fixture) reads() []string {
	return fakeactions.Format(fakeactions.Without(f.client.Actions(), "list", "watch"))
}
