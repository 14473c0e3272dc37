package drift

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/kube/inspect"
)

const clientID = "0ab1c2d3-0000-4000-8000-00000000000f"

func (f *fixture) waitMark() markCall {
	f.t.Helper()
	select {
	case m := <-f.store.markedC:
		return m
	case <-time.After(10 * time.Second):
		f.t.Fatal("no connection was marked Pending")
		return markCall{}
	}
}

// waitEvent returns the next Event the controller records: it records it
// after the mark waitMark saw.
func (f *fixture) waitEvent() string {
	f.t.Helper()
	select {
	case e := <-f.recorder.Events:
		return e
	case <-time.After(10 * time.Second):
		f.t.Fatal("no Event was recorded")
		return ""
	}
}

// The watch path end to end: a user deletes a rendered Secret.
func TestDeletedSecretMarksConnectionPending(t *testing.T) {
	conn := succeeded("blob1", "")
	cred := credValue()
	store := newStore(conn)
	f := newFixture(t, store, anywhere, recordCM(t, conn), renderedSecret("blob1", cred))
	f.run()

	f.remove(KindSecret, "team-a", "sc-blob1-secret")

	want := "Secret team-a/sc-blob1-secret was deleted; rendering it again"
	assert.Equal(t, markCall{ID: "blob1", Reason: ReasonDrift, Message: want}, f.waitMark())
	assert.Equal(t, "Warning Drift "+want, f.waitEvent(), "the Event follows the mark")
	assert.Empty(t, f.events())
	assert.NotEmpty(t, f.reads())
	for _, r := range f.reads() {
		assert.Equal(t, "get secrets team-a/sc-blob1-secret", r, "drift only reads the claimed object, and writes nothing through the API client itself")
	}
	assert.NotContains(t, f.logs.String(), cred)
}

func TestEditedSecretMarksConnectionPendingWithoutLeakingData(t *testing.T) {
	conn := succeeded("blob1", "")
	cred, edited := credValue(), credValue()
	f := newFixture(t, newStore(conn), anywhere, recordCM(t, conn), renderedSecret("blob1", cred))
	f.run()

	s := renderedSecret("blob1", cred)
	s.Data["AZURE_STORAGEBLOB_CONNECTIONSTRING"] = []byte(edited)
	s.ResourceVersion = "2"
	f.update(s)

	m := f.waitMark()
	assert.Equal(t, "Secret team-a/sc-blob1-secret was modified (data changed since sc-job rendered it (hash mismatch)); rendering it again", m.Message)
	events := strings.Join(f.events(), "\n")
	for _, v := range []string{cred, edited} {
		assert.NotContains(t, m.Message, v)
		assert.NotContains(t, events, v)
		assert.NotContains(t, f.logs.String(), v)
	}
}

// sc-job re-rendering (new data, matching hash) is not drift; a later real
// deletion on the same informer proves the first event was processed.
func TestRenderBySCJobIsNotDrift(t *testing.T) {
	a, b := succeeded("a", ""), succeeded("b", "")
	store := newStore(a, b)
	f := newFixture(t, store, anywhere, recordCM(t, a), recordCM(t, b), renderedSecret("a", credValue()), renderedSecret("b", credValue()))
	f.run()

	rerendered := renderedSecret("a", credValue())
	rerendered.ResourceVersion = "2"
	f.update(rerendered)
	f.remove(KindSecret, "team-a", "sc-b-secret")

	assert.Equal(t, "b", f.waitMark().ID)
	assert.Equal(t, []markCall{{ID: "b", Reason: ReasonDrift, Message: "Secret team-a/sc-b-secret was deleted; rendering it again"}}, store.calls())
}

func TestSharedServiceAccountMarksEveryUser(t *testing.T) {
	a, b := succeeded("a", clientID), succeeded("b", clientID)
	store := newStore(a, b)
	f := newFixture(t, store, anywhere)
	f.index(recordCM(t, a), recordCM(t, b), renderedSecret("a", "x"), renderedSecret("b", "y"))

	key := objectKey{Kind: KindServiceAccount, Namespace: "team-a", Name: connection.ServiceAccountName(clientID)}
	require.NoError(t, f.c.sync(context.Background(), key))
	calls := store.calls()
	require.Len(t, calls, 2)
	assert.ElementsMatch(t, []string{"a", "b"}, []string{calls[0].ID, calls[1].ID})
	assert.Equal(t, "ServiceAccount team-a/sc-account-0ab1c2d3-0000-4000-8000-00000000000f was deleted; rendering it again", calls[0].Message)
	assert.Len(t, f.events(), 2)
	assert.Equal(t, []string{"get serviceaccounts team-a/" + key.Name}, f.reads(), "one read for both users")
}

func TestServiceAccountWithoutHashIsModified(t *testing.T) {
	a := succeeded("a", clientID)
	store := newStore(a)
	f := newFixture(t, store, anywhere)
	sa := renderedSA(clientID)
	delete(sa.Annotations, annotationHash)
	f.index(recordCM(t, a), sa)
	require.NoError(t, f.c.sync(context.Background(), objectKey{Kind: KindServiceAccount, Namespace: "team-a", Name: sa.Name}))
	require.Len(t, store.calls(), 1)
	assert.Contains(t, store.calls()[0].Message, "was modified (annotation servicelinker.sc-extension.io/data-hash was removed)")
}

func TestOnlySettledConnectionsDrift(t *testing.T) {
	running := succeeded("run", "")
	running.Status.Phase = connection.PhaseRunning
	deleting := succeeded("del", "")
	deleting.Deletion = &connection.Deletion{RequestID: "r", DeleteResources: true}
	failed := succeeded("bad", "")
	failed.Status.Phase = connection.PhaseFailed
	store := newStore(running, deleting, failed)
	f := newFixture(t, store, anywhere)
	f.index(recordCM(t, running), recordCM(t, deleting), recordCM(t, failed))

	for _, id := range []string{"run", "del", "bad"} {
		require.NoError(t, f.c.sync(context.Background(), objectKey{Kind: KindSecret, Namespace: "team-a", Name: connection.SecretName(id)}))
	}
	assert.Empty(t, store.calls(), "sc-job owns connections that are not settled")
	assert.Empty(t, f.events())
	assert.Empty(t, f.reads(), "an object no settled connection claims is not read")
}

// The cache can lag: the record still looks Succeeded while sc-job already
// took the connection over and removed the object on purpose.
func TestStaleCacheIsCheckedAgainstTheStore(t *testing.T) {
	cached := succeeded("a", "")
	fresh := cached
	fresh.Status.Phase = connection.PhaseRunning
	store := newStore(fresh)
	f := newFixture(t, store, anywhere)
	f.index(recordCM(t, cached))
	require.NoError(t, f.c.sync(context.Background(), objectKey{Kind: KindSecret, Namespace: "team-a", Name: "sc-a-secret"}))
	assert.Empty(t, store.calls())
	assert.Empty(t, f.events())
}

func TestObjectNotClaimedIsIgnored(t *testing.T) {
	a := succeeded("a", "")
	store := newStore(a)
	f := newFixture(t, store, anywhere)
	f.index(recordCM(t, a))
	require.NoError(t, f.c.sync(context.Background(), objectKey{Kind: KindSecret, Namespace: "team-a", Name: "someone-elses"}))
	assert.Empty(t, store.calls())
	assert.Empty(t, f.reads())
}

func TestMarkPendingFailureIsRetried(t *testing.T) {
	a := succeeded("a", "")
	store := newStore(a)
	store.failN = 1
	f := newFixture(t, store, anywhere)
	f.index(recordCM(t, a))
	key := objectKey{Kind: KindSecret, Namespace: "team-a", Name: "sc-a-secret"}

	f.c.worker.Queue().Add(key)
	require.True(t, f.c.worker.ProcessNextWorkItem(context.Background()))
	assert.Equal(t, 1, f.c.worker.Queue().NumRequeues(key))
	assert.Empty(t, f.events(), "no Event for a drift that was not recorded")

	f.c.worker.Queue().Forget(key) // skip the backoff delay: take the retry now
	f.c.worker.Queue().Add(key)
	require.True(t, f.c.worker.ProcessNextWorkItem(context.Background()))
	assert.Len(t, store.calls(), 1)
	assert.Equal(t, 0, f.c.worker.Queue().NumRequeues(key))
}

func TestStoreErrorIsRetried(t *testing.T) {
	a := succeeded("a", "")
	store := newStore(a)
	store.failGet = errors.New("connection refused")
	f := newFixture(t, store, anywhere)
	f.index(recordCM(t, a))
	key := objectKey{Kind: KindSecret, Namespace: "team-a", Name: "sc-a-secret"}
	f.c.worker.Queue().Add(key)
	require.True(t, f.c.worker.ProcessNextWorkItem(context.Background()))
	assert.Equal(t, 1, f.c.worker.Queue().NumRequeues(key))
	assert.Contains(t, f.logs.String(), "connection refused")
}

// Deleted while no agent led: no watch event ever comes, the start-up sweep finds it.
func TestSweepFindsObjectsDeletedWhileNotLeading(t *testing.T) {
	a, b := succeeded("a", ""), succeeded("b", "")
	store := newStore(a, b)
	f := newFixture(t, store, anywhere, recordCM(t, a), recordCM(t, b), renderedSecret("b", "v"))
	f.run()
	assert.Equal(t, "a", f.waitMark().ID)
	assert.Len(t, store.calls(), 1, "b's Secret is in place")
}

func TestDeniedNamespaceIsNotWatched(t *testing.T) {
	a := succeeded("a", "")
	other := succeeded("b", "")
	other.Spec.Scope = "team-b"
	other.Status.Resources[0].Namespace = "team-b"
	store := newStore(a, other)
	f := newFixture(t, store, namespaces.Policy{Release: agentNS, Denied: []string{"team-a", "kube-system"}},
		recordCM(t, a), recordCM(t, other), renderedSecret("a", "v"))
	sb := renderedSecret("b", "w")
	sb.Namespace = "team-b"
	f.create(sb)
	f.run()

	f.remove(KindSecret, "team-a", "sc-a-secret")
	f.remove(KindSecret, "team-b", "sc-b-secret")
	assert.Equal(t, "b", f.waitMark().ID)
	assert.Len(t, store.calls(), 1, "team-a is denied")
	for _, r := range f.reads() {
		assert.Equal(t, "get secrets team-b/sc-b-secret", r, "nothing in a denied namespace is read")
	}
	for _, a := range f.meta.Actions() {
		if l, ok := a.(k8stesting.ListAction); ok {
			assert.Equal(t, "app.kubernetes.io/managed-by=sc-extension", l.GetListRestrictions().Labels.String(), "%s listed by label", a.GetResource().Resource)
			assert.Equal(t, "metadata.namespace!=kube-node-lease,metadata.namespace!=kube-public,metadata.namespace!=kube-system,metadata.namespace!=sc-system,metadata.namespace!=team-a",
				l.GetListRestrictions().Fields.String(), "%s: the release, system and denied namespaces left out on the server, each once (the parsed selector is sorted)", a.GetResource().Resource)
		}
	}
}

// With a watch list, one namespaced pair of watches per allowed entry: a
// watched namespace the policy denies anyway (the release namespace, a
// system one, a denied one) gets none.
func TestInformersFollowThePolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy namespaces.Policy
		want   []string // the namespaces listed, once per resource
	}{
		{"no watch list: all namespaces", anywhere, []string{""}},
		{"watch list", namespaces.Policy{Release: agentNS, Watch: []string{"team-a", agentNS, "kube-system", "team-b", "team-a", "team-c"}, Denied: []string{"team-b"}},
			[]string{"team-a", "team-c"}},
		{"nothing left to watch", namespaces.Policy{Release: agentNS, Watch: []string{"team-b", agentNS}, Denied: []string{"team-b"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scheme := metadatafake.NewTestScheme()
			require.NoError(t, metav1.AddMetaToScheme(scheme))
			meta := metadatafake.NewSimpleMetadataClient(scheme)
			inf := NewInformers(meta, tc.policy, 0)
			stop := make(chan struct{})
			inf.Start(stop)
			assert.True(t, inf.WaitForCacheSync(stop)[reflect.TypeFor[*metav1.PartialObjectMetadata]()])
			close(stop)
			inf.Shutdown()
			listed := map[string][]string{}
			for _, a := range meta.Actions() {
				if l, ok := a.(k8stesting.ListAction); ok {
					listed[a.GetResource().Resource] = append(listed[a.GetResource().Resource], a.GetNamespace())
					assert.Contains(t, l.GetListRestrictions().Fields.String(), "metadata.namespace!="+agentNS)
				}
			}
			for _, r := range []string{"secrets", "serviceaccounts"} {
				assert.ElementsMatch(t, tc.want, listed[r], r)
			}
		})
	}
}

// Objects in a namespace the policy refuses are not queued, whether an
// event or a record names them: the field selector already keeps them out
// of the watch, and a record claiming one is not sc-job's to have rendered.
func TestDeniedObjectsAreNotQueued(t *testing.T) {
	f := newFixture(t, newStore(), namespaces.Policy{Release: agentNS, Denied: []string{"payments"}})
	for _, ns := range []string{agentNS, "kube-system", "kube-public", "kube-node-lease", "payments"} {
		s := partial(t, renderedSecret("a", "v"))
		s.Namespace = ns
		f.c.objectHandler(KindSecret).OnAdd(s, false)
		conn := succeeded("a", clientID)
		for i := range conn.Status.Resources {
			conn.Status.Resources[i].Namespace = ns
		}
		f.c.enqueueResources(conn)
	}
	assert.Equal(t, 0, f.c.worker.Queue().Len())

	f.c.objectHandler(KindSecret).OnAdd(partial(t, renderedSecret("a", "v")), false)
	assert.Equal(t, 1, f.c.worker.Queue().Len(), "team-a is allowed")
}

func TestNewRejectsMissingDependencies(t *testing.T) {
	_, err := New(Deps{Namespace: agentNS})
	require.ErrorIs(t, err, ErrInvalidDeps)

	f := newFixture(t, newStore(), anywhere)
	d := Deps{Namespace: agentNS, Records: f.records.Core().V1().ConfigMaps(), Informers: f.inf, Client: f.client,
		Policy: namespaces.Policy{Release: "other"}, DriftOf: inspect.DriftOf, NotOurs: inspect.NotOurs, Store: f.store, Recorder: f.recorder}
	_, err = New(d)
	require.ErrorIs(t, err, ErrInvalidDeps)
	assert.Contains(t, err.Error(), `the policy's release namespace "other" is not the agent's "sc-system"`)
	d.Policy.Release = agentNS
	_, err = New(d)
	require.ErrorIs(t, err, ErrInvalidDeps, "f.c already indexes this records informer")
	assert.Contains(t, err.Error(), "index records by claimed object")
	d.Records = informers.NewSharedInformerFactoryWithOptions(f.client, 0, informers.WithNamespace(agentNS)).Core().V1().ConfigMaps()
	_, err = New(d)
	require.NoError(t, err)
}

func TestEditedServiceAccountIsModified(t *testing.T) {
	a := succeeded("a", clientID)
	store := newStore(a)
	f := newFixture(t, store, anywhere)
	sa := renderedSA(clientID)
	f.index(recordCM(t, a), sa)
	key := objectKey{Kind: KindServiceAccount, Namespace: "team-a", Name: sa.Name}

	require.NoError(t, f.c.sync(context.Background(), key))
	assert.Empty(t, store.calls(), "as rendered: no drift")

	edited := sa.DeepCopy()
	edited.Annotations["azure.workload.identity/client-id"] = "11111111-0000-4000-8000-000000000000"
	edited.ResourceVersion = "2"
	f.index(edited)
	require.NoError(t, f.c.sync(context.Background(), key))
	require.Len(t, store.calls(), 1)
	assert.Contains(t, store.calls()[0].Message, "was modified (workload identity annotations changed since sc-job rendered it (hash mismatch))")
}
