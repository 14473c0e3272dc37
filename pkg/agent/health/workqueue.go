package health

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

// The workqueue_* metrics are client-go's, named and bucketed the way
// Kubernetes' component-base and controller-runtime export them, so that
// dashboards and alerts written for any controller work on the agent's
// queues too. client-go takes one provider per process and hands it every
// named queue created after it is set; the series are therefore
// process-wide, and every registry NewMetrics builds gathers them.
var (
	wqDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Subsystem: "workqueue", Name: "depth",
		Help: "Keys waiting in the workqueue, by queue name.",
	}, []string{"name"})
	wqAdds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "workqueue", Name: "adds_total",
		Help: "Adds the workqueue handled, by queue name.",
	}, []string{"name"})
	wqQueueDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: "workqueue", Name: "queue_duration_seconds",
		Help:    "Seconds a key waited in the workqueue before a worker took it.",
		Buckets: prometheus.ExponentialBuckets(10e-9, 10, 12),
	}, []string{"name"})
	wqWorkDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: "workqueue", Name: "work_duration_seconds",
		Help:    "Seconds a worker spent on one key.",
		Buckets: prometheus.ExponentialBuckets(10e-9, 10, 12),
	}, []string{"name"})
	wqUnfinished = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Subsystem: "workqueue", Name: "unfinished_work_seconds",
		Help: "Seconds of work in progress not yet observed by work_duration; " +
			"a value that keeps growing means a stuck worker.",
	}, []string{"name"})
	wqLongest = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Subsystem: "workqueue", Name: "longest_running_processor_seconds",
		Help: "Seconds the longest-running worker of the queue has spent on its current key.",
	}, []string{"name"})
	wqRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "workqueue", Name: "retries_total",
		Help: "Rate-limited re-adds (retries) the workqueue handled, by queue name.",
	}, []string{"name"})

	workqueueCollectors = []prometheus.Collector{
		wqDepth, wqAdds, wqQueueDuration, wqWorkDuration, wqUnfinished, wqLongest, wqRetries,
	}
)

// installWorkqueueMetrics makes client-go report every named queue created
// from now on to the workqueue_* vectors. client-go keeps the first
// provider a process sets and ignores the others, and a queue created
// before it reports nothing: the agent calls NewMetrics first thing.
func installWorkqueueMetrics() { workqueue.SetProvider(workqueueProvider{}) }

// workqueueProvider is client-go's MetricsProvider over the vectors above;
// a queue's name (pkg/kube/controller.New's name) is its label.
type workqueueProvider struct{}

func (workqueueProvider) NewDepthMetric(name string) workqueue.GaugeMetric {
	return wqDepth.WithLabelValues(name)
}

func (workqueueProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	return wqAdds.WithLabelValues(name)
}

func (workqueueProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return wqQueueDuration.WithLabelValues(name)
}

func (workqueueProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return wqWorkDuration.WithLabelValues(name)
}

func (workqueueProvider) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return wqUnfinished.WithLabelValues(name)
}

func (workqueueProvider) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return wqLongest.WithLabelValues(name)
}

func (workqueueProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	return wqRetries.WithLabelValues(name)
}
