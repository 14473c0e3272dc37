package health

import (
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
	LaunchReplaced = "replaced" // a finished Job was deleted and recreated

	ChangeDeleted  = "deleted"
	ChangeModified = "modified"
	// ChangeReplaced: a same-named object with another UID took the place
	// of ours. Counted apart because it is a tenant's act, not an edit.
	ChangeReplaced = "replaced"
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
}

// NewMetrics creates a registry holding the agent's metrics plus the Go
// runtime and process collectors.
func NewMetrics() *Metrics {
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
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.statusPublished, m.jobsLaunched, m.drift, m.leader,
	)
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
