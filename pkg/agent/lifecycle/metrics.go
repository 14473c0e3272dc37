package lifecycle

import (
	"context"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// CountingStore is intake's store with each outcome counted for /metrics
// (sc_agent_requests_processed_total): applied, duplicate or error.
type CountingStore struct {
	intake.Store
	Metrics *health.Metrics
}

// Apply applies and counts the outcome.
func (s CountingStore) Apply(ctx context.Context, ch connection.Change) (connection.Connection, bool, error) {
	c, applied, err := s.Store.Apply(ctx, ch)
	switch {
	case err != nil:
		s.Metrics.RequestProcessed(health.OutcomeError)
	case applied:
		s.Metrics.RequestProcessed(health.OutcomeApplied)
	default:
		s.Metrics.RequestProcessed(health.OutcomeDuplicate)
	}
	return c, applied, err
}

// JobRuns observes how long each sc-job run took
// (sc_agent_job_run_duration_seconds): sc-job is a short-lived pod that
// Prometheus cannot scrape, so the agent reads the duration off the Job.
// Register it on the leader's sc-job Job informer, the launcher's. A run
// is observed once, when the informer sees the Job end:
//
//   - Complete: succeeded, from status.startTime to status.completionTime;
//   - Failed: failed, from status.startTime to the Failed condition;
//   - deleted before either: succeeded, from status.startTime to the
//     deletion. sc-job deletes its own Job at the end of a run in which no
//     connection newly failed, so this is how most successful runs end; a
//     Job deleted by hand mid-run is counted the same way.
//
// A Job first seen already ended (a new leader's initial list) is not
// observed: the leader that saw it end did, and a run that ended while no
// leader watched is missed rather than counted twice.
type JobRuns struct {
	Metrics *health.Metrics
	// Now is when a Job deleted without a deletion timestamp went away;
	// time.Now if nil.
	Now func() time.Time
}

var _ cache.ResourceEventHandler = JobRuns{}

// OnAdd ignores the Job: a new Job has not run, and one listed already
// ended was observed by whoever saw it end.
func (JobRuns) OnAdd(any, bool) {}

// OnUpdate observes a Job that has just ended.
func (r JobRuns) OnUpdate(oldObj, newObj any) {
	old, ok := oldObj.(*batchv1.Job)
	job, ok2 := newObj.(*batchv1.Job)
	if !ok || !ok2 || jobEnded(old) || job.Status.StartTime == nil {
		return
	}
	cond, ended := jobEnd(job)
	if !ended {
		return
	}
	result, end := health.JobFailed, cond.LastTransitionTime.Time
	if cond.Type == batchv1.JobComplete {
		result = health.JobSucceeded
		if job.Status.CompletionTime != nil {
			end = job.Status.CompletionTime.Time
		}
	}
	r.Metrics.JobRunFinished(result, end.Sub(job.Status.StartTime.Time))
}

// OnDelete observes a Job removed while it ran: sc-job deleting its own
// Job after a successful run.
func (r JobRuns) OnDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	job, ok := obj.(*batchv1.Job)
	if !ok || jobEnded(job) || job.Status.StartTime == nil {
		return // observed when it ended, or never ran
	}
	end := time.Now()
	if r.Now != nil {
		end = r.Now()
	}
	if job.DeletionTimestamp != nil {
		end = job.DeletionTimestamp.Time
	}
	r.Metrics.JobRunFinished(health.JobSucceeded, end.Sub(job.Status.StartTime.Time))
}

// jobEnd is the launcher's test of a finished Job: its true Complete or
// Failed condition.
func jobEnd(job *batchv1.Job) (batchv1.JobCondition, bool) {
	for _, c := range job.Status.Conditions {
		if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
			return c, true
		}
	}
	return batchv1.JobCondition{}, false
}

func jobEnded(job *batchv1.Job) bool {
	_, ended := jobEnd(job)
	return ended
}
