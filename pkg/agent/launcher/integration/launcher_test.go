//go:build integration

// Package launcher_integration runs the launcher against a real API server
// (etcd + kube-apiserver + kube-controller-manager, no kubelet): the Job it
// creates must pass real validation, and Job status transitions are
// simulated the way the job controller would write them.
package launcher_integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	connrecord "github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

const keepFailedFor = 4 * time.Second

type env struct {
	t      *testing.T
	ctx    context.Context
	cancel context.CancelFunc
	client kubernetes.Interface
	ns     string
	// logs is everything the launcher logged.
	logs logBuffer
}

// logBuffer collects the launcher's log lines from its goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func setup(t *testing.T) *env {
	t.Helper()
	client := kubetest.New(t, kubetest.QPS(100, 200)).Clientset
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns := kubetest.Namespace(t, kubetest.Prefix("sc-system-"))
	_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sc-job"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	return &env{t: t, ctx: ctx, cancel: cancel, client: client, ns: ns}
}

// putRecord writes the record of connection name with the real record
// codec, as pkg/kube/store would.
func (e *env) putRecord(name string, phase connection.Phase, gen int64) {
	e.t.Helper()
	cm, err := connrecord.New(e.ns, connection.Connection{Spec: connection.Spec{Name: name, Scope: "default"}, Generation: gen,
		Status: connection.Status{Phase: phase}})
	require.NoError(e.t, err)
	_, err = e.client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = e.client.CoreV1().ConfigMaps(e.ns).Update(e.ctx, cm, metav1.UpdateOptions{})
	}
	require.NoError(e.t, err)
}

func (e *env) startLauncher() { e.runLauncher(e.config()) }

// config is the launcher configuration the tests run with.
func (e *env) config() launcher.Config {
	return launcher.Config{
		Namespace: e.ns, Image: "localhost/sc-extension/job:dev", ServiceAccount: "sc-job",
		ExtraArgs: []string{"--log-level=debug"}, BackoffLimit: 1, ActiveDeadlineSeconds: 600, KeepFailedFor: keepFailedFor,
		Tolerations: []corev1.Toleration{{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists}},
	}
}

// runLauncher starts a launcher with its own informers and Event
// broadcaster, as one agent's leader term would; stop ends it and waits for
// it, and runs at cleanup if the test did not call it.
func (e *env) runLauncher(cfg launcher.Config) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	records := launcher.NewRecordsFactory(e.client, e.ns, 0)
	jobs := launcher.NewJobsFactory(e.client, e.ns, launcher.DefaultJobName, 0)
	namespaces := launcher.NewNamespacesFactory(e.client, 0)
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: e.client.CoreV1().Events(e.ns)})
	c, err := launcher.New(launcher.Deps{
		Client: e.client, Records: records.Core().V1().ConfigMaps(), Jobs: jobs.Batch().V1().Jobs(),
		Namespaces: namespaces.Core().V1().Namespaces(), Waker: store.New(e.client, e.ns),
		Recorder: broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "sc-extension-agent"}),
		Log:      zerolog.New(io.MultiWriter(zerolog.NewTestWriter(e.t), &e.logs)),
	}, cfg)
	require.NoError(e.t, err)
	records.Start(ctx.Done())
	jobs.Start(ctx.Done())
	namespaces.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		require.NoError(e.t, <-done)
		records.Shutdown()
		jobs.Shutdown()
		namespaces.Shutdown()
		broadcaster.Shutdown()
	})
	e.t.Cleanup(stop)
	return stop
}

// waitJob waits until the Job sc-job exists and satisfies ok.
func (e *env) waitJob(what string, ok func(*batchv1.Job) bool) *batchv1.Job {
	e.t.Helper()
	var job *batchv1.Job
	err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		j, err := e.client.BatchV1().Jobs(e.ns).Get(ctx, launcher.DefaultJobName, metav1.GetOptions{})
		if err != nil || j.DeletionTimestamp != nil || !ok(j) {
			return false, nil
		}
		job = j
		return true, nil
	})
	require.NoError(e.t, err, "waiting for a Job that %s", what)
	return job
}

// fail writes the status the job controller writes when backoffLimit is
// exceeded (FailureTarget first, as the API server demands).
func (e *env) fail(uid types.UID) time.Time {
	e.t.Helper()
	var at metav1.Time
	require.NoError(e.t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		j, err := e.client.BatchV1().Jobs(e.ns).Get(e.ctx, launcher.DefaultJobName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		require.Equal(e.t, uid, j.UID)
		at = metav1.Now()
		if j.Status.StartTime == nil {
			j.Status.StartTime = &at
		}
		j.Status.Active, j.Status.Ready, j.Status.Terminating = 0, ptr.To[int32](0), ptr.To[int32](0)
		j.Status.Failed = 2
		j.Status.UncountedTerminatedPods = nil
		for _, t := range []batchv1.JobConditionType{batchv1.JobFailureTarget, batchv1.JobFailed} {
			j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue,
				Reason: batchv1.JobReasonBackoffLimitExceeded, Message: "Job has reached the specified backoff limit",
				LastTransitionTime: at, LastProbeTime: at})
		}
		_, err = e.client.BatchV1().Jobs(e.ns).UpdateStatus(e.ctx, j, metav1.UpdateOptions{})
		return err
	}))
	return at.Time
}

func (e *env) eventsFor(kind, name string) []string {
	list, err := e.client.CoreV1().Events(e.ns).List(e.ctx, metav1.ListOptions{})
	require.NoError(e.t, err)
	var out []string
	for _, ev := range list.Items {
		if ev.InvolvedObject.Kind == kind && ev.InvolvedObject.Name == name {
			out = append(out, ev.Reason+": "+ev.Message)
		}
	}
	return out
}

func TestLauncherLifecycleOnARealAPIServer(t *testing.T) {
	e := setup(t)
	e.putRecord("done", connection.PhaseSucceeded, 1)
	e.startLauncher()

	// 1. Pending work: exactly one Job, hardened, accepted by validation.
	e.putRecord("a", connection.PhasePending, 1)
	first := e.waitJob("exists", func(*batchv1.Job) bool { return true })
	assert.Equal(t, "1", first.Annotations[launcher.AnnotationPending])
	pod := first.Spec.Template.Spec
	assert.Equal(t, []string{"--namespace=" + e.ns, "--job-name=sc-job", "--log-level=debug"}, pod.Containers[0].Args)
	assert.Empty(t, pod.Containers[0].Env)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	assert.False(t, *pod.Containers[0].SecurityContext.AllowPrivilegeEscalation)
	managers := map[string]bool{}
	for _, mf := range first.ManagedFields {
		managers[mf.Manager] = true
	}
	assert.True(t, managers[connection.FieldManager], "created with field manager %s: %v", connection.FieldManager, managers)
	require.NoError(t, wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(e.eventsFor("Job", "sc-job")) > 0, nil
	}), "an Event on the Job")
	assert.Contains(t, e.eventsFor("Job", "sc-job")[0], "JobLaunched: Started sc-job for 1 pending connection(s): a")

	// 2. The run fails; new work arrives: replaced at once.
	e.fail(first.UID)
	e.putRecord("b", connection.PhasePending, 1)
	second := e.waitJob("replaced the failed one", func(j *batchv1.Job) bool { return j.UID != first.UID })
	assert.Equal(t, "2", second.Annotations[launcher.AnnotationPending])
	assert.NotEqual(t, first.Annotations[launcher.AnnotationDigest], second.Annotations[launcher.AnnotationDigest])

	// 3. It fails too, with no new work: kept for keepFailedFor, then retried.
	failedAt := e.fail(second.UID)
	third := e.waitJob("replaced after keepFailedFor", func(j *batchv1.Job) bool { return j.UID != second.UID })
	replacedAfter := third.CreationTimestamp.Sub(failedAt)
	t.Logf("failed Job kept for %s (keepFailedFor %s)", replacedAfter, keepFailedFor)
	// creationTimestamp has second precision
	assert.GreaterOrEqual(t, replacedAfter, keepFailedFor-time.Second, "the failed Job stayed for kubectl logs")
	assert.Equal(t, second.Annotations[launcher.AnnotationDigest], third.Annotations[launcher.AnnotationDigest])

	// 4. sc-job succeeds: records settle and it deletes its own Job. Nothing
	// is pending, so nothing comes back.
	e.putRecord("a", connection.PhaseSucceeded, 1)
	e.putRecord("b", connection.PhaseSucceeded, 1)
	require.NoError(t, e.client.BatchV1().Jobs(e.ns).Delete(e.ctx, "sc-job", metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}))
	err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 3*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := e.client.BatchV1().Jobs(e.ns).Get(ctx, "sc-job", metav1.GetOptions{})
		return err == nil, nil
	})
	require.ErrorIs(t, err, context.DeadlineExceeded, "no Job without pending work")

	var replaced []string
	for _, ev := range e.eventsFor("Job", "sc-job") {
		if strings.HasPrefix(ev, launcher.ReasonReplaced) {
			replaced = append(replaced, ev)
		}
	}
	require.Len(t, replaced, 2, fmt.Sprint(e.eventsFor("Job", "sc-job")))
	// The recorder writes Events in the order they were made: with the
	// third launch's Event written, any Event of the three launches on the
	// records would be too. There are none: one per due record would cost
	// an API write per connection per launch.
	assert.Empty(t, e.eventsFor("ConfigMap", "sc-conn-a"), "no Event per due record")
	assert.Empty(t, e.eventsFor("ConfigMap", "sc-conn-b"), "no Event per due record")
	assert.Contains(t, strings.Join(replaced, "\n"), "because new work arrived")
	assert.Contains(t, strings.Join(replaced, "\n"), "because kept for 4s, retrying")
}
