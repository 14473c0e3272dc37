package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	core "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

const (
	createJob = "create jobs sc-system/sc-job"
	deleteJob = "delete jobs sc-system/sc-job"
)

func TestNoPendingWorkNoActions(t *testing.T) {
	f := newFixture(t,
		recordCM(t, "done", connection.PhaseSucceeded, 3),
		waitingCM(t, "broken", connection.PhaseFailed, "SecretIsOwned", 1, epoch.Add(time.Minute)),
	)
	f.process()
	assert.Empty(t, f.actions())
	assert.Empty(t, f.events())
	assert.Equal(t, 0, f.c.worker.Queue().NumRequeues(f.c.key))
}

func TestPendingWorkCreatesOneHardenedJob(t *testing.T) {
	secretA, secretB := credValue(), credValue()
	f := newFixture(t,
		recordCM(t, "a", connection.PhasePending, 1),
		recordCM(t, "b", connection.PhaseRunning, 4), // a run that died mid-way
		recordCM(t, "done", connection.PhaseSucceeded, 2),
		credentialSecret("a", secretA), credentialSecret("b", secretB),
	)
	f.process()

	require.Equal(t, []string{createJob}, f.actions())
	job, create := f.createdJob()
	assert.Equal(t, connection.FieldManager, create.CreateOptions.FieldManager)
	assert.Equal(t, newWork([]workItem{item("a", 1), item("b", 4)}).digest, job.Annotations[AnnotationDigest])
	assert.Equal(t, "2", job.Annotations[AnnotationPending])
	assert.Equal(t, connection.ManagedByValue, job.Labels[connection.LabelManagedBy])
	assert.Equal(t, int32(1), *job.Spec.BackoffLimit)
	assert.Equal(t, int64(600), *job.Spec.ActiveDeadlineSeconds)

	pod := job.Spec.Template.Spec
	assert.Equal(t, corev1.RestartPolicyNever, pod.RestartPolicy)
	assert.Equal(t, "sc-job", pod.ServiceAccountName)
	assert.Equal(t, map[string]string{"kubernetes.io/os": "linux"}, pod.NodeSelector)
	assert.Equal(t, "CriticalAddonsOnly", pod.Tolerations[0].Key)
	require.NotNil(t, pod.SecurityContext)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	assert.Equal(t, int64(65532), *pod.SecurityContext.RunAsUser)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, pod.SecurityContext.SeccompProfile.Type)

	require.Len(t, pod.Containers, 1)
	ctr := pod.Containers[0]
	assert.Equal(t, "localhost/sc-extension/job:dev", ctr.Image)
	assert.Equal(t, corev1.PullNever, ctr.ImagePullPolicy)
	assert.Equal(t, []string{"--namespace=sc-system", "--job-name=sc-job", "--log-level=info"}, ctr.Args)
	assert.Empty(t, ctr.Env, "nothing, least of all a credential, travels in env")
	assert.Empty(t, ctr.EnvFrom)
	sc := ctr.SecurityContext
	require.NotNil(t, sc)
	assert.False(t, *sc.AllowPrivilegeEscalation)
	assert.True(t, *sc.ReadOnlyRootFilesystem)
	assert.True(t, *sc.RunAsNonRoot)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	for _, v := range pod.Volumes {
		assert.Nil(t, v.Secret, "no Secret volume in sc-job's pod: it reads records through the API")
	}

	// No credential value anywhere the launcher writes.
	spec, err := json.Marshal(job)
	require.NoError(t, err)
	events := f.events()
	for _, secret := range []string{secretA, secretB} {
		assert.NotContains(t, string(spec), secret)
		assert.NotContains(t, strings.Join(events, "\n"), secret)
		assert.NotContains(t, f.logs.String(), secret)
	}

	assert.Equal(t, []string{
		"Normal JobLaunched Started sc-job for 2 pending connection(s): a, b",
	}, events)
	assert.Equal(t, 1.0, counter(t, f.metrics, "sc_agent_jobs_launched_total", "new"))
	assert.Equal(t, 0, f.c.worker.Queue().NumRequeues(f.c.key))
}

func TestRunningJobIsLeftAlone(t *testing.T) {
	f := newFixture(t,
		recordCM(t, "a", connection.PhasePending, 1),
		recordCM(t, "late", connection.PhasePending, 1), // arrived after the run started
		ourJob(item("a", 1)),
	)
	f.process()
	assert.Empty(t, f.actions())
	assert.Empty(t, f.events())
}

func TestFailedJobStaysUntilKeepFailedFor(t *testing.T) {
	failedAt := epoch.Add(-time.Minute)
	f := newFixture(t,
		recordCM(t, "a", connection.PhasePending, 1),
		withCondition(ourJob(item("a", 1)), batchv1.JobFailed, "BackoffLimitExceeded", failedAt),
	)
	after, err := f.c.sync(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 14*time.Minute, after, "called again when the keep time runs out")
	assert.Empty(t, f.actions(), "the failed Job stays for kubectl logs")

	f.clock.Step(14*time.Minute - time.Second)
	after, err = f.c.sync(context.Background())
	require.NoError(t, err)
	assert.Equal(t, time.Second, after)
	assert.Empty(t, f.actions())

	f.clock.Step(time.Second)
	after, err = f.c.sync(context.Background())
	require.NoError(t, err)
	assert.Zero(t, after)
	require.Equal(t, []string{deleteJob, createJob}, f.actions())
	del := f.client.Actions()[0].(core.DeleteActionImpl)
	assert.Equal(t, metav1.DeletePropagationBackground, *del.DeleteOptions.PropagationPolicy)
	assert.Equal(t, "uid-job-1", string(*del.DeleteOptions.Preconditions.UID), "never deletes a Job it did not look at")
	events := f.events()
	require.NotEmpty(t, events)
	assert.Equal(t, "Normal JobReplaced Replaced sc-job that failed (BackoffLimitExceeded) because kept for 15m0s, retrying; started it for 1 pending connection(s): a", events[0])
	assert.Equal(t, 1.0, counter(t, f.metrics, "sc_agent_jobs_launched_total", "replaced"))
}

// The keep time is enforced through the queue's clock: no polling, no sleeps.
func TestFailedJobIsRequeuedWhenKeepTimeRunsOut(t *testing.T) {
	f := newFixture(t,
		recordCM(t, "a", connection.PhasePending, 1),
		withCondition(ourJob(item("a", 1)), batchv1.JobFailed, "BackoffLimitExceeded", epoch),
	)
	f.process()
	assert.Empty(t, f.actions())
	assert.Equal(t, 0, f.c.worker.Queue().Len())

	f.clock.Step(15 * time.Minute)
	got := make(chan string, 1)
	go func() {
		k, _ := f.c.worker.Queue().Get()
		got <- k
	}()
	select {
	case k := <-got:
		assert.Equal(t, f.c.key, k)
		f.c.worker.Queue().Done(k)
	case <-time.After(10 * time.Second):
		t.Fatal("key not requeued once keepFailedFor passed")
	}
}

func TestFailedJobIsReplacedAtOnceWhenNewWorkArrives(t *testing.T) {
	f := newFixture(t,
		recordCM(t, "a", connection.PhasePending, 2), // updated since the failed run
		recordCM(t, "b", connection.PhasePending, 1), // new connection
		withCondition(ourJob(item("a", 1)), batchv1.JobFailed, "BackoffLimitExceeded", epoch),
	)
	f.process()
	require.Equal(t, []string{deleteJob, createJob}, f.actions())
	job, _ := f.createdJob()
	assert.Equal(t, newWork([]workItem{item("a", 2), item("b", 1)}).digest, job.Annotations[AnnotationDigest])
	assert.Contains(t, f.events()[0], "because new work arrived")
}

// A user fixes what made a connection fail and re-sends the same spec: the
// generation stays, the request id is new, and that is new work.
func TestFailedJobIsReplacedWhenTheSameSpecIsResent(t *testing.T) {
	c := records.Connection("a", connection.PhasePending, 1)
	c.Status.LastRequestID = "r2"
	resent := records.ConfigMap(t, c)
	failed := ourJob(workItem{id: "a", generation: 1, requestID: "r1"})
	f := newFixture(t, resent, withCondition(failed, batchv1.JobFailed, "BackoffLimitExceeded", epoch))
	f.process()
	require.Equal(t, []string{deleteJob, createJob}, f.actions())
}

func TestFinishedJobWithoutPendingWorkStays(t *testing.T) {
	f := newFixture(t,
		waitingCM(t, "a", connection.PhaseFailed, "SecretIsOwned", 1, epoch.Add(time.Minute)),
		withCondition(ourJob(item("a", 1)), batchv1.JobFailed, "BackoffLimitExceeded", epoch.Add(-time.Hour)),
	)
	after, err := f.c.sync(context.Background())
	require.NoError(t, err)
	assert.Equal(t, time.Minute, after, "nothing due: looked at again when the backoff ends")
	assert.Empty(t, f.actions())
}

// sc-job deletes its own Job on success; if that delete never happened, a
// completed Job must not block new work.
func TestCompletedJobIsReplacedForNewWork(t *testing.T) {
	f := newFixture(t,
		recordCM(t, "b", connection.PhasePending, 1),
		withCondition(ourJob(item("a", 1)), batchv1.JobComplete, "CompletionsReached", epoch),
	)
	f.process()
	require.Equal(t, []string{deleteJob, createJob}, f.actions())
	assert.Contains(t, f.events()[0], "completed (CompletionsReached)")
}

func TestAlreadyExistsRequeuesQuietly(t *testing.T) {
	f := newFixture(t, recordCM(t, "a", connection.PhasePending, 1))
	f.client.PrependReactor("create", "jobs", func(core.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Group: "batch", Resource: "jobs"}, "sc-job")
	})
	f.process()
	assert.Equal(t, []string{createJob}, f.actions())
	assert.Equal(t, 1, f.c.worker.Queue().NumRequeues(f.c.key))
	assert.Empty(t, f.events())
	assert.NotContains(t, f.logs.String(), `"level":"error"`)
	assert.Equal(t, 0.0, counter(t, f.metrics, "sc_agent_jobs_launched_total", "new"))
}

func TestCreateErrorIsRetriedWithBackoff(t *testing.T) {
	f := newFixture(t, recordCM(t, "a", connection.PhasePending, 1))
	f.client.PrependReactor("create", "jobs", func(core.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
	})
	f.process()
	f.process()
	assert.Equal(t, []string{createJob, createJob}, f.actions())
	assert.Equal(t, 2, f.c.worker.Queue().NumRequeues(f.c.key))
	assert.Contains(t, f.logs.String(), "etcd unavailable")
}

func TestDeleteConflictRequeuesWithoutCreating(t *testing.T) {
	f := newFixture(t,
		recordCM(t, "b", connection.PhasePending, 1),
		withCondition(ourJob(item("a", 1)), batchv1.JobFailed, "BackoffLimitExceeded", epoch),
	)
	f.client.PrependReactor("delete", "jobs", func(core.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "batch", Resource: "jobs"}, "sc-job",
			errors.New("Precondition failed: UID in precondition"))
	})
	f.process()
	assert.Equal(t, []string{deleteJob}, f.actions())
	assert.Equal(t, 1, f.c.worker.Queue().NumRequeues(f.c.key))
}

func TestTerminatingJobRequeues(t *testing.T) {
	job := withCondition(ourJob(item("a", 1)), batchv1.JobFailed, "BackoffLimitExceeded", epoch)
	job.DeletionTimestamp = ptr.To(metav1.NewTime(epoch))
	job.Finalizers = []string{"orphan"}
	f := newFixture(t, recordCM(t, "b", connection.PhasePending, 1), job)
	f.process()
	assert.Empty(t, f.actions())
	assert.Equal(t, 1, f.c.worker.Queue().NumRequeues(f.c.key))
}

func TestJobNotOursIsNeverTouched(t *testing.T) {
	job := withCondition(ourJob(), batchv1.JobFailed, "BackoffLimitExceeded", epoch.Add(-24*time.Hour))
	job.Labels = map[string]string{connection.LabelManagedBy: "Helm"}
	f := newFixture(t, recordCM(t, "a", connection.PhasePending, 1), job)
	f.process()
	assert.Empty(t, f.actions())
	assert.Equal(t, 0, f.c.worker.Queue().NumRequeues(f.c.key), "retrying cannot help; the Job's own events bring us back")
	assert.Contains(t, f.logs.String(), ErrNotOwned.Error())
}

func TestUndecodableRecordIsSkipped(t *testing.T) {
	bad := recordCM(t, "bad", connection.PhasePending, 1)
	bad.Data[record.KeyGeneration] = "not-a-number"
	f := newFixture(t, bad, recordCM(t, "good", connection.PhaseSucceeded, 1))
	f.process()
	assert.Empty(t, f.actions(), "sc-job could not read it either")
	assert.Contains(t, f.logs.String(), "skipping undecodable record")
}

func TestConfigValidation(t *testing.T) {
	cfg := testConfig()
	cfg.Image = ""
	cfg.BackoffLimit = -1
	err := cfg.WithDefaults().Validate()
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "image")
	assert.Contains(t, err.Error(), "backoff")
	require.NoError(t, testConfig().WithDefaults().Validate())
}
