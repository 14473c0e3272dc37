package health

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metric label values callers use; fixed sets keep label cardinality bounded.
const (
	OutcomeApplied   = "applied"   // request stored
	OutcomeDuplicate = "duplicate" // request id already applied
	OutcomeInvalid   = "invalid"   // rejected: retrying cannot help
	OutcomeError     = "error"     // transient failure, will be redelivered

	LaunchNew      = "new"      // no Job existed
	LaunchReplaced = "replaced" // a finished or outdated Job was deleted and recreated

	ChangeDeleted  = "deleted"
	ChangeModified = "modified"
	// ChangeReplaced: a same-named object with another UID took the place
	// of ours. Counted apart because it is a tenant's act, not an edit.
	ChangeReplaced = "replaced"

	// How a request the intake held ended (sc_agent_request_duration_seconds).
	RequestAcked      = "acked"      // stored (or a duplicate, or a delete already done) and acked
	RequestTerminated = "terminated" // ended Failed: rejected, or expired

	// How an sc-job run ended (sc_agent_job_run_duration_seconds).
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
)

// Histogram buckets, in seconds. A request is applied in milliseconds
// when the API server answers and waits out a backoff (up to an hour)
// when it does not; an sc-job run is a pod's start plus the work, seconds
// to minutes, bounded by its activeDeadlineSeconds.
var (
	requestBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
	jobRunBuckets  = []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600}
)

// Metrics is every metric the agent exports. Its methods are safe on a nil
// *Metrics so that components and tests that do not care can pass nil.
type Metrics struct {
	registry        *prometheus.Registry
	requests        *prometheus.CounterVec
	statusPublished *prometheus.CounterVec
	jobsLaunched    *prometheus.CounterVec
	drift           *prometheus.CounterVec
	leader          prometheus.Gauge
	requestDuration *prometheus.HistogramVec
	requestsHeld    prometheus.Gauge
	jobRunDuration  *prometheus.HistogramVec
}

// NewMetrics creates a registry holding the agent's metrics, client-go's
// workqueue_* metrics and the Go runtime and process collectors. It also
// sets client-go's workqueue metrics provider, which a process sets once
// and before its first queue: call it at start, before any controller is
// built. Several registries (tests) share the one set of workqueue_*
// series.
func NewMetrics() *Metrics {
	installWorkqueueMetrics()
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sc_agent", Name: "requests_processed_total",
			Help: "Connection requests consumed from JetStream, by outcome.",
		}, []string{"outcome"}),
		statusPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sc_agent", Name: "status_events_published_total",
			Help: "Connection status events published, by phase.",
		}, []string{"phase"}),
		jobsLaunched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sc_agent", Name: "jobs_launched_total",
			Help: "sc-job Jobs created, by reason (new or replaced).",
		}, []string{"reason"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sc_agent", Name: "drift_detections_total",
			Help: "Rendered objects found deleted, modified or replaced outside sc-extension, by kind and change.",
		}, []string{"kind", "change"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sc_agent", Name: "leader",
			Help: "1 while this agent replica holds the leader Lease.",
		}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "sc_agent", Name: "request_duration_seconds",
			Help:    "Seconds from a request's delivery to this agent to its ack or termination, retries and the wait behind its connection's earlier requests included, by outcome.",
			Buckets: requestBuckets,
		}, []string{"outcome"}),
		requestsHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sc_agent", Name: "requests_held",
			Help: "Requests delivered and not yet acked or terminated: queued behind their connection, being applied, or waiting to retry.",
		}),
		jobRunDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "sc_agent", Name: "job_run_duration_seconds",
			Help:    "Seconds an sc-job Job ran, from its start to its end, as the leader saw it end; by result.",
			Buckets: jobRunBuckets,
		}, []string{"result"}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.statusPublished, m.jobsLaunched, m.drift, m.leader,
		m.requestDuration, m.requestsHeld, m.jobRunDuration,
	)
	m.registry.MustRegister(workqueueCollectors...)
	// Every known label value from the start, so that a scrape before the
	// first request or run shows zeros rather than no series at all.
	for _, o := range []string{RequestAcked, RequestTerminated} {
		m.requestDuration.WithLabelValues(o)
	}
	for _, r := range []string{JobSucceeded, JobFailed} {
		m.jobRunDuration.WithLabelValues(r)
	}
	return m
}

// Registry is what /metrics serves; components with metrics of their own
// (for example the NATS client) may register on it.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.registry
}

// RequestProcessed counts one consumed request; outcome is one of the Outcome constants.
func (m *Metrics) RequestProcessed(outcome string) {
	if m != nil {
		m.requests.WithLabelValues(outcome).Inc()
	}
}

// StatusPublished counts one published status event.
func (m *Metrics) StatusPublished(phase string) {
	if m != nil {
		m.statusPublished.WithLabelValues(phase).Inc()
	}
}

// JobLaunched counts one created sc-job; reason is LaunchNew or LaunchReplaced.
func (m *Metrics) JobLaunched(reason string) {
	if m != nil {
		m.jobsLaunched.WithLabelValues(reason).Inc()
	}
}

// DriftDetected counts one drifted rendered object; change is ChangeDeleted, ChangeModified or ChangeReplaced.
func (m *Metrics) DriftDetected(kind, change string) {
	if m != nil {
		m.drift.WithLabelValues(kind, change).Inc()
	}
}

// SetLeader records whether this replica leads.
func (m *Metrics) SetLeader(leading bool) {
	if m == nil {
		return
	}
	if leading {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

// RequestFinished observes one request the intake held, from its delivery
// to its ack or termination; outcome is RequestAcked or RequestTerminated.
func (m *Metrics) RequestFinished(outcome string, d time.Duration) {
	if m != nil {
		m.requestDuration.WithLabelValues(outcome).Observe(d.Seconds())
	}
}

// AddRequestsHeld moves the count of held requests by delta: +1 for a
// delivery taken, -1 for each request finished or handed back.
func (m *Metrics) AddRequestsHeld(delta int) {
	if m != nil {
		m.requestsHeld.Add(float64(delta))
	}
}

// JobRunFinished observes one finished sc-job run; result is JobSucceeded
// or JobFailed.
func (m *Metrics) JobRunFinished(result string, d time.Duration) {
	if m != nil {
		m.jobRunDuration.WithLabelValues(result).Observe(max(d, 0).Seconds())
	}
}
