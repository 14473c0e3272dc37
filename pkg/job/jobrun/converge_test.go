package jobrun

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// t0 is the fixture's clock; tests move it forward, they never sleep.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// at runs sc-job as pod instance at the given time.
func at(now time.Time, instance string) func(*Config) {
	return func(c *Config) { c.Now = func() time.Time { return now }; c.Instance = instance }
}

func (f *fixture) inNamespace(ch connection.Change, ns string) connection.Change {
	ch.Spec.Scope = ns
	return ch
}

func jobExists(t *testing.T, f *fixture) bool {
	_, err := f.client.BatchV1().Jobs(sys).Get(context.Background(), "sc-job", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	require.NoError(t, err)
	return true
}

func TestMissingNamespaceParksTheConnectionAndTheRunSucceeds(t *testing.T) {
	f := newFixture(t, ownJob())
	f.apply(f.inNamespace(f.secretChange("gone1"), "team-gone"))
	f.apply(f.secretChange("db1"))
	f.client.ClearActions()

	sum, err := f.runner().Run(context.Background())
	require.NoError(t, err, "a missing namespace is not a run failure")
	assert.Equal(t, 1, sum.Rendered)
	require.Len(t, sum.Parked, 1)
	assert.Equal(t, []string{
		"get configmaps sc-system/sc-conn-db1",
		"get secrets sc-system/sc-conn-db1-cred",
		"get namespaces /team-a",
		"get secrets team-a/sc-db1-secret",
		"create secrets team-a/sc-db1-secret",
		"update configmaps sc-system/sc-conn-db1", // Succeeded, no Event
		"get configmaps sc-system/sc-conn-gone1",
		"get secrets sc-system/sc-conn-gone1-cred",
		"get namespaces /team-gone",                 // nothing is written into it
		"update configmaps sc-system/sc-conn-gone1", // parked
		"create events sc-system/*",                 // its Warning
		"get jobs sc-system/sc-job",
		"create events sc-system/*", // the run's
		"delete jobs sc-system/sc-job",
	}, f.ownActions())
	assert.False(t, jobExists(t, f), "the run deleted its Job")

	c := f.get("gone1")
	assert.Equal(t, connection.PhasePending, c.Status.Phase)
	assert.Equal(t, connection.ReasonNamespaceNotFound, c.Status.Reason)
	assert.Equal(t, `connection "gone1" waits for its namespace: target namespace does not exist: namespace "team-gone" not found`, c.Status.Message)
	require.NotNil(t, c.Status.RetryAfter)
	assert.Equal(t, t0.Add(connection.ParkedDelay), *c.Status.RetryAfter, "only a slow safety net: the agent wakes it")
	assert.Equal(t, &connection.Failure{Since: t0, Time: t0, Phase: connection.PhasePending, Reason: ReasonNamespaceNotFound,
		Message: c.Status.Message, Run: "sc-job-abcde", Generation: 1, RequestID: "req-1"}, c.Status.LastFailure)
	assert.Contains(t, f.events(), "Warning NamespaceNotFound sc-conn-gone1: "+c.Status.Message+
		" (attempt 1, failing since 2026-01-02T03:04:05Z, next at 2026-01-02T03:14:05Z)")
	assert.Equal(t, `sc-job: 1 connection rendered, 0 deleted, 0 failed; 1 waiting for their namespace: `+c.Status.Message+"\n", f.out.String())
}

func TestTerminatingNamespaceParksTheConnection(t *testing.T) {
	gone := metav1.NewTime(t0.Add(-time.Minute))
	term := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-old", DeletionTimestamp: &gone, Finalizers: []string{"kubernetes"}},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	f := newFixture(t, ownJob(), term)
	f.apply(f.inNamespace(f.secretChange("old1"), "team-old"))

	sum, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	require.Len(t, sum.Parked, 1)
	c := f.get("old1")
	assert.Equal(t, connection.PhasePending, c.Status.Phase)
	assert.Equal(t, connection.ReasonNamespaceNotFound, c.Status.Reason)
	assert.Contains(t, c.Status.Message, `namespace "team-old" is being deleted`)
	for _, a := range f.client.Actions() {
		assert.False(t, a.GetNamespace() == "team-old" && a.GetVerb() != "get", "nothing written into a terminating namespace: %v", a)
	}
	assert.False(t, jobExists(t, f))
}

func TestDeletionWithMissingNamespaceCompletes(t *testing.T) {
	f := newFixture(t)
	ch := f.inNamespace(f.secretChange("gone1"), "team-gone")
	f.apply(ch)
	f.apply(connection.Change{RequestID: f.requestID(), Spec: ch.Spec, Delete: true, DeleteResources: true})

	sum, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Deleted)
	_, err = f.store.Get(context.Background(), "gone1")
	assert.ErrorIs(t, err, store.ErrNotFound, "the record is removed")
}

// unavailable makes every create of a Secret in the target namespace fail
// with a 503 while *down is true.
func unavailable(f *fixture, down *bool) {
	f.client.PrependReactor("create", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() != target || !*down {
			return false, nil, nil
		}
		return true, nil, apierrors.NewServiceUnavailable("etcdserver: leader changed")
	})
}

func TestTransientErrorKeepsTheConnectionPendingWithBackoff(t *testing.T) {
	f := newFixture(t, ownJob())
	down := true
	unavailable(f, &down)
	f.apply(f.secretChange("db1"))

	sum, err := f.runner(at(t0, "sc-job-1")).Run(context.Background())
	require.NoError(t, err, "a transient error is not a run failure")
	require.Len(t, sum.Retrying, 1)
	assert.False(t, jobExists(t, f), "the run deleted its Job")
	c := f.get("db1")
	assert.Equal(t, connection.PhasePending, c.Status.Phase)
	assert.Equal(t, ReasonRetrying, c.Status.Reason)
	assert.Equal(t, `connection "db1" failed at step apply-secret: write Secret team-a/sc-db1-secret: etcdserver: leader changed`, c.Status.Message)
	assert.Equal(t, 1, c.Status.Attempts)
	require.NotNil(t, c.Status.RetryAfter)
	assert.Equal(t, t0.Add(5*time.Second), *c.Status.RetryAfter)
	assert.Equal(t, ReasonApplyFailed, c.Status.LastFailure.Reason)
	assert.Equal(t, "sc-job-1", c.Status.LastFailure.Run)
	assert.Contains(t, f.out.String(), `; 1 retrying: `+c.Status.Message+` (attempt 1, next at 2026-01-02T03:04:10Z)`)

	// Not yet due: the next run leaves it alone and says so.
	f.client.ClearActions()
	f.logs.Reset()
	sum, err = f.runner(at(t0.Add(4*time.Second), "sc-job-2")).Run(context.Background())
	require.NoError(t, err)
	assert.Empty(t, sum.Retrying)
	require.Len(t, sum.StillFailing, 1)
	assert.Equal(t, []string{"get jobs sc-system/sc-job"}, f.ownActions(), "not processed")
	assert.Contains(t, f.logs.String(), `connection \"db1\": still failing since 2026-01-02T03:04:05Z: ApplyFailed`)

	// Due and still failing: the backoff doubles, the streak keeps its start.
	sum, err = f.runner(at(t0.Add(5*time.Second), "sc-job-3")).Run(context.Background())
	require.NoError(t, err)
	require.Len(t, sum.Retrying, 1)
	c = f.get("db1")
	assert.Equal(t, 2, c.Status.Attempts)
	assert.Equal(t, t0.Add(15*time.Second), *c.Status.RetryAfter)
	assert.Equal(t, t0, c.Status.LastFailure.Since)

	// The API server recovers: the next due run renders it.
	down = false
	sum, err = f.runner(at(t0.Add(15*time.Second), "sc-job-4")).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Rendered)
	c = f.get("db1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase)
	assert.Zero(t, c.Status.Attempts)
	assert.Nil(t, c.Status.RetryAfter)
	assert.Equal(t, "sc-job-3", c.Status.LastFailure.Run, "the last failure stays as history")
}

func TestPermanentFailureFailsOnlyTheRunThatFoundIt(t *testing.T) {
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: "sc-db1-secret"}}
	f := newFixture(t, ownJob(), foreign)
	f.apply(f.secretChange("db1"))
	f.apply(f.wiChange("kv1"))

	sum, err := f.runner(at(t0, "sc-job-1")).Run(context.Background())
	require.ErrorIs(t, err, ErrFailed, "the run that found the failure exits 1")
	require.Len(t, sum.Failures, 1)
	assert.True(t, jobExists(t, f), "and keeps its Job for kubectl logs")
	failed := f.get("db1")
	assert.Equal(t, connection.PhaseFailed, failed.Status.Phase)
	assert.Equal(t, t0.Add(connection.FailedBase), *failed.Status.RetryAfter, "retried on a slow backoff even if nothing changes")

	// The launcher replaces the finished Job when new healthy work arrives.
	require.NoError(t, f.client.BatchV1().Jobs(sys).Delete(context.Background(), "sc-job", metav1.DeleteOptions{}))
	_, err = f.client.BatchV1().Jobs(sys).Create(context.Background(), ownJob(), metav1.CreateOptions{})
	require.NoError(t, err)
	f.apply(f.secretChange("db2"))
	f.out.Reset()
	f.logs.Reset()
	sum, err = f.runner(at(t0.Add(10*time.Second), "sc-job-2")).Run(context.Background())
	require.NoError(t, err, "healthy work only: exit 0")
	assert.Equal(t, 1, sum.Rendered)
	assert.False(t, jobExists(t, f), "and the Job deletes itself")
	c := f.get("db1")
	assert.Equal(t, connection.PhaseFailed, c.Status.Phase)
	assert.Equal(t, failed.Status.LastFailure, c.Status.LastFailure, "the failed run's evidence stays in the status")
	assert.Equal(t, "sc-job-1", c.Status.LastFailure.Run)
	assert.Contains(t, f.logs.String(), `connection \"db1\": still failing since 2026-01-02T03:04:05Z: SecretIsOwned`)
	assert.Equal(t, `sc-job: 1 connection rendered, 0 deleted, 0 failed; 1 still failing from earlier runs: "db1" since 2026-01-02T03:04:05Z (SecretIsOwned)`+"\n", f.out.String())

	// The slow retry fails the same way: not news, so not a run failure,
	// but the Warning Event on the record is written again.
	_, err = f.client.BatchV1().Jobs(sys).Create(context.Background(), ownJob(), metav1.CreateOptions{})
	require.NoError(t, err)
	events := len(f.events())
	sum, err = f.runner(at(t0.Add(connection.FailedBase), "sc-job-3")).Run(context.Background())
	require.NoError(t, err)
	require.Len(t, sum.StillFailing, 1)
	assert.False(t, jobExists(t, f))
	c = f.get("db1")
	assert.Equal(t, 2, c.Status.Attempts)
	assert.Equal(t, t0.Add(connection.FailedBase+2*connection.FailedBase), *c.Status.RetryAfter)
	assert.Equal(t, t0, c.Status.LastFailure.Since)
	assert.Equal(t, "sc-job-3", c.Status.LastFailure.Run)
	assert.Contains(t, f.events()[events:], "Warning SecretIsOwned sc-conn-db1: "+c.Status.Message+
		" (attempt 2, failing since 2026-01-02T03:04:05Z, next at 2026-01-02T03:07:05Z)")

	// The user fixes it: a re-sent request is due at once, whatever the backoff.
	require.NoError(t, f.client.CoreV1().Secrets(target).Delete(context.Background(), foreign.Name, metav1.DeleteOptions{}))
	resent := f.secretChange("db1")
	f.apply(resent)
	sum, err = f.runner(at(t0.Add(connection.FailedBase+time.Second), "sc-job-4")).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Rendered)
	assert.Equal(t, connection.PhaseSucceeded, f.get("db1").Status.Phase)
}

// A pod retried by the Job's backoffLimit after a failed one finds nothing
// due; it exits 0 but leaves the Job, whose failed pod holds the log.
func TestJobWithAFailedPodIsKept(t *testing.T) {
	job := ownJob()
	job.Status.Failed = 1
	f := newFixture(t, job)
	f.apply(f.secretChange("db1"))
	f.client.ClearActions()
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	assert.NotContains(t, fakeactions.Of(f.client), "delete jobs sc-system/sc-job")
	assert.True(t, jobExists(t, f))
}

// The Job is the run and its pods are attempts: when an earlier pod of this
// Job failed a connection, the retried pod (which finds it not yet due)
// fails too, so the Job ends Failed for kubectl describe. A later Job with
// only healthy work succeeds.
func TestRetriedPodReportsItsJobsFailure(t *testing.T) {
	job := ownJob()
	job.CreationTimestamp = metav1.NewTime(t0)
	f := newFixture(t, job)
	target := "team-a"
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: "sc-db1-secret"}}
	_, err := f.client.CoreV1().Secrets(target).Create(context.Background(), foreign, metav1.CreateOptions{})
	require.NoError(t, err)
	f.apply(f.secretChange("db1"))
	_, err = f.runner(at(t0.Add(time.Second), "sc-job-abcde")).Run(context.Background())
	require.ErrorIs(t, err, ErrFailed, "the first pod fails the connection")

	j, err := f.client.BatchV1().Jobs(sys).Get(context.Background(), "sc-job", metav1.GetOptions{})
	require.NoError(t, err)
	require.Zero(t, j.Status.Failed, "the Job controller has not counted the failed pod yet when it starts the next")
	_, err = f.runner(at(t0.Add(2*time.Second), "sc-job-fghij")).Run(context.Background())
	require.ErrorIs(t, err, ErrFailed, "the retried pod reports its Job's failure")
	assert.True(t, jobExists(t, f))

	// A new Job, created after the failure: the standing failure is not its.
	require.NoError(t, f.client.BatchV1().Jobs(sys).Delete(context.Background(), "sc-job", metav1.DeleteOptions{}))
	next := ownJob()
	next.CreationTimestamp = metav1.NewTime(t0.Add(time.Minute))
	next.Status.Failed = 1
	_, err = f.client.BatchV1().Jobs(sys).Create(context.Background(), next, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = f.runner(at(t0.Add(time.Minute+time.Second), "sc-job-klmno")).Run(context.Background())
	require.NoError(t, err)
}

// A pod killed mid-run leaves its connection Running with nothing rendered;
// the next run resumes it (Running is due) and finishes it.
func TestRunResumesAConnectionLeftRunningByAKilledPod(t *testing.T) {
	f := newFixture(t, ownJob())
	c := f.apply(f.secretChange("db1"))
	_, err := f.store.UpdateStatus(context.Background(), c.Spec.ID(), func(c *connection.Connection) error {
		c.Status.Phase, c.Status.Reason = connection.PhaseRunning, "Rendering"
		return nil
	})
	require.NoError(t, err)
	require.True(t, connection.Due(f.get("db1"), t0), "a Running record is due: its run died")

	sum, err := f.runner(at(t0, "sc-job-second")).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Rendered)
	assert.Equal(t, connection.PhaseSucceeded, f.get("db1").Status.Phase)
	_, err = f.client.CoreV1().Secrets("team-a").Get(context.Background(), "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err, "rendered by the resuming run")
}

// A connection retrying after a transient error since this Job began is
// Pending, not failed: a retried pod that leaves it to its backoff succeeds.
func TestRetriedPodIgnoresARetryingConnection(t *testing.T) {
	job := ownJob()
	job.CreationTimestamp = metav1.NewTime(t0)
	f := newFixture(t, job)
	c := f.apply(f.secretChange("db1"))
	next := t0.Add(time.Minute)
	_, err := f.store.UpdateStatus(context.Background(), c.Spec.ID(), func(c *connection.Connection) error {
		c.Status.Phase, c.Status.Reason, c.Status.Attempts, c.Status.RetryAfter = connection.PhasePending, connection.ReasonRetrying, 1, &next
		c.Status.LastFailure = &connection.Failure{Since: t0.Add(time.Second), Time: t0.Add(time.Second), Phase: connection.PhasePending,
			Reason: "ApplyFailed", Message: "503", Generation: c.Generation, RequestID: c.Status.LastRequestID}
		return nil
	})
	require.NoError(t, err)
	sum, err := f.runner(at(t0.Add(2*time.Second), "sc-job-retry")).Run(context.Background())
	require.NoError(t, err, "a retrying connection never fails a run")
	require.Len(t, sum.StillFailing, 1, "left to its backoff")
}
