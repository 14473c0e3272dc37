package launcher

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// A connection parked on its namespace is not work: starting sc-job for it
// would find nothing due, exit 0 and delete itself, and the launcher would
// start it again, in a loop. The launcher looks again when the parking ends.
func TestParkedConnectionStartsNoJobUntilItsTime(t *testing.T) {
	f := newFixture(t,
		waitingCM(t, "db1", connection.PhasePending, connection.ReasonNamespaceNotFound, 1, epoch.Add(connection.ParkedDelay)),
		recordCM(t, "done", connection.PhaseSucceeded, 1),
	)
	after, err := f.c.sync(context.Background())
	require.NoError(t, err)
	assert.Equal(t, connection.ParkedDelay, after, "requeued for when the parking ends")
	assert.Empty(t, f.actions())
	assert.Empty(t, f.events())

	f.clock.Step(connection.ParkedDelay - time.Second)
	after, err = f.c.sync(context.Background())
	require.NoError(t, err)
	assert.Equal(t, time.Second, after)
	assert.Empty(t, f.actions())

	f.clock.Step(time.Second)
	after, err = f.c.sync(context.Background())
	require.NoError(t, err)
	assert.Zero(t, after)
	require.Equal(t, []string{createJob}, f.actions())
	job, _ := f.createdJob()
	assert.Equal(t, "1", job.Annotations[AnnotationPending])
}

// The requeue goes through the queue's clock: no polling, no sleeps.
func TestWaitingConnectionIsRequeuedWhenItsBackoffEnds(t *testing.T) {
	f := newFixture(t, waitingCM(t, "db1", connection.PhasePending, connection.ReasonRetrying, 3, epoch.Add(20*time.Second)))
	f.process()
	assert.Empty(t, f.actions())
	assert.Equal(t, 0, f.c.worker.Queue().Len(), "not before its time")

	f.clock.Step(20 * time.Second)
	f.awaitQueued(f.c.worker.Queue().Get, f.c.worker.Queue().Done, f.c.key)
}

func TestRetryingConnectionDueNowStartsJob(t *testing.T) {
	f := newFixture(t,
		waitingCM(t, "r1", connection.PhasePending, connection.ReasonRetrying, 2, epoch.Add(-time.Second)),
		waitingCM(t, "parked", connection.PhasePending, connection.ReasonNamespaceNotFound, 1, epoch.Add(time.Hour)),
	)
	f.process()
	require.Equal(t, []string{createJob}, f.actions())
	job, _ := f.createdJob()
	assert.Equal(t, newWork([]workItem{item("r1", 1)}).digest, job.Annotations[AnnotationDigest], "only the due connection")
	assert.Equal(t, []string{
		"Normal JobLaunched Started sc-job for 1 pending connection(s): r1",
	}, f.events())
}

// The earliest of several backoffs decides when to look again.
func TestEarliestBackoffDecidesTheRequeue(t *testing.T) {
	f := newFixture(t,
		waitingCM(t, "failed", connection.PhaseFailed, "SecretIsOwned", 1, epoch.Add(connection.FailedBase)),
		waitingCM(t, "retrying", connection.PhasePending, connection.ReasonRetrying, 1, epoch.Add(connection.RetryBase)),
		waitingCM(t, "parked", connection.PhasePending, connection.ReasonNamespaceNotFound, 1, epoch.Add(connection.ParkedDelay)),
	)
	after, err := f.c.sync(context.Background())
	require.NoError(t, err)
	assert.Equal(t, connection.RetryBase, after)
	assert.Empty(t, f.actions())
}

// A user re-sends a request for a connection that backs off: that is new
// work, due at once whatever its retryAfter.
func TestResentRequestIsDueDespiteBackoff(t *testing.T) {
	cm := waitingCM(t, "db1", connection.PhaseFailed, "SecretIsOwned", 4, epoch.Add(8*time.Minute))
	c := decode(t, cm)
	c.Status.Phase, c.Status.LastRequestID = connection.PhasePending, "r2"
	f := newFixture(t, encode(t, c))
	f.process()
	require.Equal(t, []string{createJob}, f.actions())
}

// While a failed Job is kept for kubectl logs, a backoff that ends first
// changes the due work and so brings the launcher back before the keep time.
func TestFailedJobKeptUntilTheNextBackoffEnds(t *testing.T) {
	f := newFixture(t,
		waitingCM(t, "a", connection.PhaseFailed, "SecretIsOwned", 1, epoch.Add(connection.FailedBase)),
		waitingCM(t, "b", connection.PhasePending, connection.ReasonRetrying, 1, epoch.Add(connection.RetryBase)),
		withCondition(ourJob(item("a", 1), item("b", 1)), batchv1.JobFailed, "BackoffLimitExceeded", epoch),
	)
	after, err := f.c.sync(context.Background())
	require.NoError(t, err)
	assert.Equal(t, connection.RetryBase, after)
	assert.Empty(t, f.actions(), "the failed Job stays while nothing is due")

	f.clock.Step(connection.RetryBase)
	_, err = f.c.sync(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{deleteJob, createJob}, f.actions())
	job, _ := f.createdJob()
	assert.Equal(t, newWork([]workItem{item("b", 1)}).digest, job.Annotations[AnnotationDigest])
}
