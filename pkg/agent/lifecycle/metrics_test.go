package lifecycle_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/lifecycle"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// outcomes answers Apply with applied, duplicate or err in turn.
type outcomes []error

var errDuplicate = errors.New("duplicate")

func (o *outcomes) Apply(context.Context, connection.Change) (connection.Connection, bool, error) {
	next := (*o)[0]
	*o = (*o)[1:]
	switch {
	case next == nil:
		return connection.Connection{Generation: 1}, true, nil
	case errors.Is(next, errDuplicate):
		return connection.Connection{Generation: 1}, false, nil
	default:
		return connection.Connection{}, false, next
	}
}

func TestCountingStoreCountsEachOutcome(t *testing.T) {
	m := health.NewMetrics()
	conflict := errors.New("conflict")
	s := lifecycle.CountingStore{Store: &outcomes{nil, nil, errDuplicate, conflict}, Metrics: m}
	for range 4 {
		_, _, _ = s.Apply(context.Background(), connection.Change{})
	}
	_, applied, err := (lifecycle.CountingStore{Store: &outcomes{conflict}, Metrics: m}).Apply(context.Background(), connection.Change{})
	assert.False(t, applied)
	assert.ErrorIs(t, err, conflict, "the store's answer passes through")

	families, err := m.Registry().Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "sc_agent_requests_processed_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				got[l.GetValue()] = metric.GetCounter().GetValue()
			}
		}
	}
	assert.Equal(t, map[string]float64{health.OutcomeApplied: 2, health.OutcomeDuplicate: 1, health.OutcomeError: 2}, got)
}

// runs is sc_agent_job_run_duration_seconds{result} as scraped: sample
// count and sum; it fails the test if the family is not a histogram
// labelled by result alone.
func runs(t *testing.T, reg prometheus.Gatherer, result string) (count uint64, sum float64) {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "sc_agent_job_run_duration_seconds" {
			continue
		}
		require.Equal(t, "HISTOGRAM", f.GetType().String())
		for _, m := range f.GetMetric() {
			require.Len(t, m.GetLabel(), 1)
			require.Equal(t, "result", m.GetLabel()[0].GetName())
			if m.GetLabel()[0].GetValue() == result {
				return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
			}
		}
	}
	t.Fatalf("no sc_agent_job_run_duration_seconds{result=%q}", result)
	return 0, 0
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// job is sc-job started at t0 with the given true conditions, each at t0+at.
func job(conds map[batchv1.JobConditionType]time.Duration) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "sc-job", Namespace: "sc-system", UID: "u1"}}
	j.Status.StartTime = &metav1.Time{Time: t0}
	for typ, at := range conds {
		j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{
			Type: typ, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: t0.Add(at)},
		})
		if typ == batchv1.JobComplete {
			j.Status.CompletionTime = &metav1.Time{Time: t0.Add(at)}
		}
	}
	return j
}

func TestJobRunsObservesEachRunOnceAtItsEnd(t *testing.T) {
	m := health.NewMetrics()
	reg := m.Registry()
	r := lifecycle.JobRuns{Metrics: m, Now: func() time.Time { return t0.Add(12 * time.Second) }}
	var h cache.ResourceEventHandler = r // what the leader registers on the Job informer

	running := job(nil)
	h.OnAdd(running, true)
	h.OnUpdate(running, job(map[batchv1.JobConditionType]time.Duration{batchv1.JobSuccessCriteriaMet: 29 * time.Second}))
	n, _ := runs(t, reg, health.JobSucceeded)
	assert.Zero(t, n, "not ended until Complete or Failed")

	complete := job(map[batchv1.JobConditionType]time.Duration{
		batchv1.JobSuccessCriteriaMet: 29 * time.Second, batchv1.JobComplete: 30 * time.Second})
	h.OnUpdate(running, complete)
	h.OnUpdate(complete, complete) // a later status write, or a resync
	h.OnDelete(complete)           // the launcher replacing it
	h.OnAdd(complete, true)        // a new leader's initial list
	n, sum := runs(t, reg, health.JobSucceeded)
	assert.Equal(t, uint64(1), n, "one run, observed once")
	assert.Equal(t, 30.0, sum, "startTime to completionTime")

	failed := job(map[batchv1.JobConditionType]time.Duration{batchv1.JobFailureTarget: 6 * time.Second, batchv1.JobFailed: 7 * time.Second})
	h.OnUpdate(running, failed)
	h.OnDelete(failed)
	n, sum = runs(t, reg, health.JobFailed)
	assert.Equal(t, uint64(1), n)
	assert.Equal(t, 7.0, sum, "startTime to the Failed condition")

	// sc-job deleting its own Job after a successful run: the Job never
	// reaches Complete; the run ends when it goes away.
	h.OnDelete(running)
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "sc-system/sc-job", Obj: running}) // deletion seen after a watch gap
	deleting := running.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: t0.Add(5 * time.Second)}
	h.OnDelete(deleting)
	n, sum = runs(t, reg, health.JobSucceeded)
	assert.Equal(t, uint64(4), n)
	assert.Equal(t, 30.0+12+12+5, sum, "a deletion timestamp when the Job has one, else the time the leader saw it go")

	neverStarted := job(nil)
	neverStarted.Status.StartTime = nil
	h.OnDelete(neverStarted)
	h.OnUpdate(neverStarted, neverStarted)
	n, _ = runs(t, reg, health.JobSucceeded)
	assert.Equal(t, uint64(4), n, "a Job that never started is no run")
}
