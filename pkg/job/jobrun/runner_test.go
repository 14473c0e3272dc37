package jobrun

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

func ownJob() *batchv1.Job {
	return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: sys, Name: "sc-job"}}
}

func TestRunRendersNewConnection(t *testing.T) {
	f := newFixture(t, ownJob())
	ch := f.secretChange("db1")
	f.apply(ch)
	storeActions := f.client.Actions()
	f.client.ClearActions()

	sum, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Rendered)
	assert.Zero(t, sum.Arrived)
	assert.Equal(t, 1, sum.Writes)
	lists, watches := f.records()
	assert.Equal(t, [2]int{1, 1}, [2]int{lists, watches}, "one LIST and one WATCH of the records, no re-list")
	assert.Equal(t, []string{
		"get configmaps sc-system/sc-conn-db1", // a fresh read, no claim written
		"get secrets sc-system/sc-conn-db1-cred",
		"get namespaces /team-a",
		"get secrets team-a/sc-db1-secret",
		"create secrets team-a/sc-db1-secret",
		"update configmaps sc-system/sc-conn-db1", // Succeeded: the one status write, from the one read
		"get jobs sc-system/sc-job",               // no earlier pod of it failed
		"create events sc-system/*",               // the run's one Event
		"delete jobs sc-system/sc-job",
	}, f.ownActions())
	assert.Equal(t, []string{"create secrets sc-system/sc-conn-db1-cred", "create configmaps sc-system/sc-conn-db1"},
		fakeactions.Writes(storeActions), "the store: the credential Secret, then the record with its first status")
	t.Logf("API writes per created connection: store %d + sc-job %d (the run's Event and its Job's delete are per run)",
		len(fakeactions.Writes(storeActions)), len(fakeactions.Writes(f.client.Actions())))

	c := f.get("db1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase)
	assert.Equal(t, c.Generation, c.Status.ObservedGeneration)
	assert.Equal(t, []connection.ResourceRef{{Kind: "Secret", Namespace: target, Name: "sc-db1-secret"}}, c.Status.Resources)
	sec, err := f.client.CoreV1().Secrets(target).Get(context.Background(), "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, ch.Credentials["AZURE_REDIS_CONNECTIONSTRING"], string(sec.Data["AZURE_REDIS_CONNECTIONSTRING"]))
	assert.Equal(t, []string{"Normal RunCompleted sc-job: sc-job: 1 connection rendered, 0 deleted, 0 failed"}, f.events(),
		"one Event for the run, none per successful connection")
	assert.Equal(t, "sc-job: 1 connection rendered, 0 deleted, 0 failed\n", f.out.String())
	for _, a := range f.client.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok && a.GetResource().Resource == "jobs" {
			require.NotNil(t, d.DeleteOptions.PropagationPolicy)
			assert.Equal(t, metav1.DeletePropagationBackground, *d.DeleteOptions.PropagationPolicy)
		}
	}
}

func TestRunRenderAllNoOpMakesNoObjectWrites(t *testing.T) {
	f := newFixture(t)
	f.apply(f.secretChange("db1"))
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	before := f.get("db1")
	f.client.ClearActions()
	f.out.Reset()

	sum, err := f.runner(func(c *Config) { c.RenderAll = true }).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 0, sum.Writes, "re-rendering an intact connection writes no rendered object")
	assert.Equal(t, 1, sum.Rendered)
	assert.Equal(t, 1, sum.Unchanged)
	assert.Equal(t, []string{
		"get configmaps sc-system/sc-conn-db1",
		"get secrets sc-system/sc-conn-db1-cred",
		"get namespaces /team-a",
		"get secrets team-a/sc-db1-secret",
		"get jobs sc-system/sc-job",
	}, f.ownActions(), "reads only: no status, no Event, no object")
	after := f.get("db1")
	assert.Equal(t, before.Status, after.Status, "the record is as it was")
	assert.Equal(t, "sc-job: 1 connection rendered, 0 deleted, 0 failed; 1 unchanged, nothing written\n", f.out.String())
}

// A re-render that does change an object (a hand edit the drift watch
// missed, a release that renders differently) records it.
func TestRunRenderAllRecordsWhatItChanged(t *testing.T) {
	f := newFixture(t)
	f.apply(f.secretChange("db1"))
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	sec, err := f.client.CoreV1().Secrets(target).Get(context.Background(), "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	sec.Data = map[string][]byte{"AZURE_REDIS_CONNECTIONSTRING": []byte("edited")}
	_, err = f.client.CoreV1().Secrets(target).Update(context.Background(), sec, metav1.UpdateOptions{})
	require.NoError(t, err)
	f.client.ClearActions()

	sum, err := f.runner(func(c *Config) { c.RenderAll = true }).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Writes)
	assert.Equal(t, 0, sum.Unchanged)
	assert.Equal(t, []string{
		"update secrets team-a/sc-db1-secret",
		"update configmaps sc-system/sc-conn-db1",
		"create events sc-system/*",
	}, fakeactions.Writes(f.client.Actions()), "the repair, its status, the run's Event")
	assert.Equal(t, "rendered generation 1: 0 created, 1 updated, 0 unchanged", f.get("db1").Status.Message)
}

// The watch may lag: each connection is read again before it is
// rendered, so a request that arrived meanwhile is what gets rendered.
func TestRunRendersTheRecordAsItIsNotAsListed(t *testing.T) {
	f := newFixture(t)
	ch := f.secretChange("db1")
	f.apply(ch)
	newer := f.secretChange("db1")
	st := &snapshotHookStore{Store: f.store, hook: func() { f.watched(); f.apply(newer) }}
	sum, err := f.runner(func(c *Config) { c.Store = st }).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Rendered)
	c := f.get("db1")
	assert.Equal(t, int64(2), c.Status.ObservedGeneration)
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase)
	sec, err := f.client.CoreV1().Secrets(target).Get(context.Background(), "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, newer.Credentials["AZURE_REDIS_CONNECTIONSTRING"], string(sec.Data["AZURE_REDIS_CONNECTIONSTRING"]))
	var renders int
	for _, a := range fakeactions.Writes(f.client.Actions()) {
		if strings.HasSuffix(a, "team-a/sc-db1-secret") {
			renders++
		}
	}
	assert.Equal(t, 1, renders, "the listed, older generation was never rendered")
}

// snapshotHookStore runs hook once, before the first fresh read.
type snapshotHookStore struct {
	*store.Store
	hook func()
	once sync.Once
}

func (s *snapshotHookStore) Snapshot(ctx context.Context, id string) (store.Snapshot, error) {
	s.once.Do(s.hook)
	return s.Store.Snapshot(ctx, id)
}

// Two runs may overlap (the render hook and a launched run): when the
// other finished this very work while this one failed it, the stale
// failure is not written over the success.
func TestRunFailureDoesNotOverwriteAnotherRunsSuccess(t *testing.T) {
	f := newFixture(t)
	f.apply(f.secretChange("db1"))
	done := false
	st := &credsHookStore{Store: f.store, hook: func() {
		if done {
			return
		}
		done = true
		// The other run's outcome, then what makes this one fail.
		_, err := f.store.UpdateStatus(context.Background(), "db1", func(c *connection.Connection) error {
			c.Status.Phase, c.Status.Reason, c.Status.ObservedGeneration = connection.PhaseSucceeded, ReasonRendered, c.Generation
			return nil
		})
		require.NoError(t, err)
		_, err = f.client.CoreV1().Secrets(target).Create(context.Background(),
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: "sc-db1-secret"}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}}
	sum, err := f.runner(func(c *Config) { c.Store = st }).Run(context.Background())
	require.NoError(t, err, "the failure is not this run's news: the work was done")
	assert.Empty(t, sum.Failures)
	c := f.get("db1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase)
	assert.Nil(t, c.Status.LastFailure)
}

func TestRunFailsOnForeignSecretAndKeepsJob(t *testing.T) {
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: "sc-db1-secret"}}
	f := newFixture(t, ownJob(), foreign)
	f.apply(f.secretChange("db1"))
	f.apply(f.wiChange("kv1"))

	sum, err := f.runner().Run(context.Background())
	require.ErrorIs(t, err, ErrFailed)
	assert.Equal(t, 1, sum.Rendered)
	require.Len(t, sum.Failures, 1)
	assert.Equal(t, `sc-job: 1 connection rendered, 0 deleted, 1 failed: connection "db1" failed at step apply-secret: `+
		`Secret team-a/sc-db1-secret exists and is not managed by sc-extension (ErrSecretIsOwned)`+"\n", f.out.String())

	c := f.get("db1")
	assert.Equal(t, connection.PhaseFailed, c.Status.Phase)
	assert.Equal(t, ReasonSecretIsOwned, c.Status.Reason)
	assert.Equal(t, `connection "db1" failed at step apply-secret: Secret team-a/sc-db1-secret exists and is not managed by sc-extension`, c.Status.Message)
	assert.Contains(t, f.events(), "Warning SecretIsOwned sc-conn-db1: "+c.Status.Message)
	cm, err := f.client.CoreV1().ConfigMaps(sys).Get(context.Background(), "sc-conn-db1", metav1.GetOptions{})
	require.NoError(t, err)
	evs, err := f.client.EventsV1().Events(sys).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	regarding := map[string]string{}
	for _, ev := range evs.Items {
		regarding[ev.Reason] = ev.Regarding.Kind + " " + ev.Regarding.Name + " " + string(ev.Regarding.UID)
	}
	assert.Equal(t, map[string]string{
		// with the record's UID: kubectl describe configmap lists it
		ReasonSecretIsOwned: "ConfigMap sc-conn-db1 " + string(cm.UID),
		ReasonRunFailed:     "Job sc-job " + string(ownJob().UID),
	}, regarding, "one Event per failure and one for the run; none for kv1's success")

	_, err = f.client.BatchV1().Jobs(sys).Get(context.Background(), "sc-job", metav1.GetOptions{})
	assert.NoError(t, err, "a failed run keeps its Job for kubectl logs/describe")
	got, err := f.client.CoreV1().Secrets(target).Get(context.Background(), "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, got.Data, "the foreign Secret is untouched")
}

func TestRunDeletesWithSharedServiceAccount(t *testing.T) {
	f := newFixture(t)
	f.apply(f.wiChange("kv1"))
	f.apply(f.wiChange("kv2"))
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	sa := connection.ServiceAccountName(clientID)

	del := func(name string) {
		f.apply(connection.Change{RequestID: f.requestID(), Spec: f.wiChange(name).Spec, Delete: true, DeleteResources: true})
	}
	del("kv1")
	sum, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Deleted)
	_, err = f.client.CoreV1().ServiceAccounts(target).Get(context.Background(), sa, metav1.GetOptions{})
	assert.NoError(t, err, "kv2 still uses the ServiceAccount")
	_, err = f.client.CoreV1().Secrets(target).Get(context.Background(), "sc-kv1-secret", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err))
	_, err = f.store.Get(context.Background(), "kv1")
	assert.ErrorIs(t, err, store.ErrNotFound, "the record is removed")

	del("kv2")
	_, err = f.runner().Run(context.Background())
	require.NoError(t, err)
	_, err = f.client.CoreV1().ServiceAccounts(target).Get(context.Background(), sa, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "last user gone: ServiceAccount removed")
}

func TestRunDeleteKeepsResourcesUnlessAsked(t *testing.T) {
	f := newFixture(t)
	ch := f.secretChange("db1")
	f.apply(ch)
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	f.apply(connection.Change{RequestID: f.requestID(), Spec: ch.Spec, Delete: true})
	f.client.ClearActions()
	sum, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Deleted)
	for _, a := range f.client.Actions() {
		assert.NotEqual(t, target, a.GetNamespace(), "nothing in the target namespace is touched: %v", fakeactions.Of(f.client))
	}
	_, err = f.client.CoreV1().Secrets(target).Get(context.Background(), "sc-db1-secret", metav1.GetOptions{})
	assert.NoError(t, err, "kept")
}

// A half-written credential pair resolves itself (the agent's redelivery
// rewrites it): the connection retries, it does not fail.
func TestRunStaleCredentialsRetryWithoutRendering(t *testing.T) {
	f := newFixture(t)
	f.apply(f.secretChange("db1"))
	// A half-written pair: the Secret holds another write's version.
	sec, err := f.client.CoreV1().Secrets(sys).Get(context.Background(), "sc-conn-db1-cred", metav1.GetOptions{})
	require.NoError(t, err)
	sec.Annotations[record.VersionAnnotation] = "some-other-request"
	_, err = f.client.CoreV1().Secrets(sys).Update(context.Background(), sec, metav1.UpdateOptions{})
	require.NoError(t, err)

	sum, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	require.Len(t, sum.Retrying, 1)
	assert.Equal(t, ReasonCredentialsStale, sum.Retrying[0].Reason)
	assert.Equal(t, StepCredentials, sum.Retrying[0].Step)
	c := f.get("db1")
	assert.Equal(t, connection.PhasePending, c.Status.Phase)
	assert.Equal(t, ReasonRetrying, c.Status.Reason)
	assert.Equal(t, ReasonCredentialsStale, c.Status.LastFailure.Reason)
	_, err = f.client.CoreV1().Secrets(target).Get(context.Background(), "sc-db1-secret", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "nothing rendered from a mixed pair")
}

func TestRunTransientErrorsAreRetriedWithinTheRun(t *testing.T) {
	f := newFixture(t, ownJob())
	f.apply(f.secretChange("db1"))
	calls := 0
	f.client.PrependReactor("create", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() != target {
			return false, nil, nil
		}
		calls++
		if calls <= 2 {
			return true, nil, apierrors.NewServiceUnavailable("etcd leader changed")
		}
		return false, nil, nil
	})
	sum, err := f.runner(func(c *Config) { c.Attempts = 3 }).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Rendered)
	assert.Equal(t, 3, calls)
}

func TestRunStatusConflictIsRetriedByReRead(t *testing.T) {
	f := newFixture(t)
	f.apply(f.secretChange("db1"))
	failed := false
	f.client.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failed {
			return false, nil, nil
		}
		failed = true
		return true, nil, apierrors.NewConflict(corev1.Resource("configmaps"), "sc-conn-db1", errors.New("modified"))
	})
	f.client.ClearActions()
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{
		"update configmaps sc-system/sc-conn-db1", // from the run's one read: conflict
		"get configmaps sc-system/sc-conn-db1",    // re-read
		"update configmaps sc-system/sc-conn-db1",
	}, f.ownActions()[5:8])
	assert.Equal(t, connection.PhaseSucceeded, f.get("db1").Status.Phase)
}

// A request that arrives while the run works is taken by it: the run
// watches the records, it does not list them again.
func TestRunTakesWorkThatArrivesWhileItRuns(t *testing.T) {
	f := newFixture(t)
	f.apply(f.secretChange("db1"))
	late := f.secretChange("db2")
	var r *Runner
	st := &credsHookStore{Store: f.store, hook: once(func() {
		f.watched()
		f.apply(late)
		f.offered(r, "db2") // queued before db1's turn ends: the run is not idle
	})}
	r = f.runner(func(c *Config) { c.Store = st })
	sum, err := r.Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, sum.Rendered)
	assert.Equal(t, 1, sum.Arrived)
	assert.Equal(t, connection.PhaseSucceeded, f.get("db2").Status.Phase)
	lists, _ := f.records()
	assert.Equal(t, 1, lists, "never listed again")
	assert.Contains(t, f.out.String(), "; 1 arrived while it ran")
}

func TestRunNewRequestDuringRenderIsNotOverwritten(t *testing.T) {
	f := newFixture(t)
	ch := f.secretChange("db1")
	f.apply(ch)
	newer := ch
	newer.RequestID = f.requestID()
	newer.Spec.Labels = map[string]string{"v": "2"}
	// The agent applies generation 2 while generation 1 is being rendered.
	// (A fake-client reactor cannot call the client: it holds its lock.)
	var r *Runner
	st := &credsHookStore{Store: f.store, hook: once(func() {
		f.watched()
		f.apply(newer)
		f.offered(r, "db1") // due again while its turn is in flight
	})}
	r = f.runner(func(c *Config) { c.Store = st })
	sum, err := r.Run(context.Background())
	require.NoError(t, err)
	c := f.get("db1")
	assert.Equal(t, int64(2), c.Generation)
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase)
	assert.Equal(t, int64(2), c.Status.ObservedGeneration, "generation 1's success did not claim generation 2")
	assert.Equal(t, 1, sum.Arrived, "generation 2 arrived and was rendered by the same run")
	sec, err := f.client.CoreV1().Secrets(target).Get(context.Background(), "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "2", sec.Labels["v"])
}

// credsHookStore runs hook after reading credentials, mid-render.
type credsHookStore struct {
	*store.Store
	hook func()
}

func (s *credsHookStore) Credentials(ctx context.Context, c connection.Connection) (connection.Credentials, error) {
	creds, err := s.Store.Credentials(ctx, c)
	s.hook()
	return creds, err
}
