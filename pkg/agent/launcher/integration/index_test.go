//go:build integration

package launcher_integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	connrecord "github.com/sc-extension/sc-extension/pkg/kube/record"
)

// putParked writes the record of connection name, parked by sc-job on its
// missing target namespace.
func (e *env) putParked(name, target string) {
	e.t.Helper()
	until := time.Now().Add(connection.ParkedDelay).UTC().Truncate(time.Second)
	cm, err := connrecord.New(e.ns, connection.Connection{
		Spec: connection.Spec{Name: name, Scope: target}, Generation: 1,
		Status: connection.Status{Phase: connection.PhasePending, Reason: connection.ReasonNamespaceNotFound,
			Message: "namespace " + target + " not found", Attempts: 1, RetryAfter: &until},
	})
	require.NoError(e.t, err)
	_, err = e.client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, metav1.CreateOptions{})
	require.NoError(e.t, err)
}

func (e *env) record(name string) connection.Connection {
	e.t.Helper()
	cm, err := e.client.CoreV1().ConfigMaps(e.ns).Get(e.ctx, connection.ConfigMapName(name), metav1.GetOptions{})
	require.NoError(e.t, err)
	c, err := connrecord.Decode(cm)
	require.NoError(e.t, err)
	return c
}

// Among many settled records, a corrupt one and two parked on different
// missing namespaces, the launcher reads only what its indexes file: the
// namespace that appears wakes exactly the record parked on it, that
// record starts exactly one Job, record writes while it runs start no
// other, and the corrupt record is logged once however many syncs run.
func TestParkedRecordAmongManyIsWokenAndStartsOneJob(t *testing.T) {
	const settled = 200
	// Fresh names: a namespace of an earlier run may still be terminating.
	target, missing := "sc-index-target-"+utilrand.String(5), "sc-index-never-"+utilrand.String(5)
	e := setup(t)
	for i := range settled {
		e.putRecord(fmt.Sprintf("done-%03d", i), connection.PhaseSucceeded, 1)
	}
	corrupt, err := connrecord.New(e.ns, connection.Connection{Spec: connection.Spec{Name: "bad", Scope: "default"}, Generation: 1,
		Status: connection.Status{Phase: connection.PhasePending}})
	require.NoError(t, err)
	corrupt.Data[connrecord.KeyStatus] = "{"
	_, err = e.client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, corrupt, metav1.CreateOptions{})
	require.NoError(t, err)
	e.putParked("db1", target)
	e.putParked("db2", missing)

	// Every Job created in the namespace, as the API server reports it.
	jobs, err := e.client.BatchV1().Jobs(e.ns).Watch(e.ctx, metav1.ListOptions{})
	require.NoError(t, err)
	t.Cleanup(jobs.Stop)
	var (
		mu    sync.Mutex
		added []types.UID
	)
	go func() {
		for ev := range jobs.ResultChan() {
			if j, ok := ev.Object.(*batchv1.Job); ok && ev.Type == watch.Added {
				mu.Lock()
				added = append(added, j.UID)
				mu.Unlock()
			}
		}
	}()
	created := func() []types.UID {
		mu.Lock()
		defer mu.Unlock()
		return append([]types.UID(nil), added...)
	}
	e.startLauncher()

	// Nothing is due: no Job comes (a short look; the unit tests pin the
	// decision exactly).
	err = wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := e.client.BatchV1().Jobs(e.ns).Get(ctx, launcher.DefaultJobName, metav1.GetOptions{})
		return err == nil, nil
	})
	require.ErrorIs(t, err, context.DeadlineExceeded, "no sc-job while everything is settled, parked or unreadable")

	start := time.Now()
	kubetest.Namespace(t, kubetest.Name(target))
	job := e.waitJob("started for the woken connection", func(*batchv1.Job) bool { return true })
	t.Logf("sc-job created %s after the namespace", time.Since(start))
	assert.Equal(t, "1", job.Annotations[launcher.AnnotationPending], "the woken record only")
	woken := e.record("db1")
	assert.Equal(t, launcher.ReasonNamespaceCreated, woken.Status.Reason)
	assert.Nil(t, woken.Status.RetryAfter, "due now")
	still := e.record("db2")
	assert.Equal(t, connection.ReasonNamespaceNotFound, still.Status.Reason, "its namespace does not exist")
	assert.NotNil(t, still.Status.RetryAfter)

	// While sc-job runs, record writes bring the launcher back and start
	// nothing: one Job was created, and it is the same one.
	for i := range 20 {
		e.putRecord(fmt.Sprintf("done-%03d", i), connection.PhaseSucceeded, 2)
	}
	e.putRecord("late", connection.PhasePending, 1)
	err = wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		j, err := e.client.BatchV1().Jobs(e.ns).Get(ctx, launcher.DefaultJobName, metav1.GetOptions{})
		return err == nil && j.UID != job.UID, nil // an error here is the window closing
	})
	require.ErrorIs(t, err, context.DeadlineExceeded, "the running Job stays the only one")
	now, err := e.client.BatchV1().Jobs(e.ns).Get(e.ctx, launcher.DefaultJobName, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, job.UID, now.UID)
	require.NoError(t, wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(created()) > 0, nil
	}), "the watch reports the Job")
	assert.Equal(t, []types.UID{job.UID}, created(), "exactly one Job created")
	// The launch's Event is on the Job, one per launch.
	launched := func() (out []string) {
		for _, ev := range e.eventsFor("Job", launcher.DefaultJobName) {
			if strings.HasPrefix(ev, launcher.ReasonLaunched) || strings.HasPrefix(ev, launcher.ReasonReplaced) {
				out = append(out, ev)
			}
		}
		return out
	}
	require.NoError(t, wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(launched()) > 0, nil
	}), "the launch Event")
	assert.Equal(t, []string{"JobLaunched: Started sc-job for 1 pending connection(s): db1"}, launched())

	logs := e.logs.String()
	assert.Equal(t, 1, strings.Count(logs, "skipping undecodable record"), "the corrupt record is logged once, not per sync")
	assert.NotContains(t, logs, "parked again")
}
