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
	wqDepth = wqGauge("depth", "Keys waiting in the workqueue, by queue name.")
	wqAdds  = wqCounter("adds_total", "Adds the workqueue handled, by queue name.")
	wqQueue = wqHistogram("queue_duration_seconds", "Seconds a key waited in the workqueue before a worker took it.")
	wqWork  = wqHistogram("work_duration_seconds", "Seconds a worker spent on one key.")
	wqStuck = wqGauge("unfinished_work_seconds", "Seconds of work in progress not yet observed by work_duration; "+
		"a value that keeps growing means a stuck worker.")
	wqLongest = wqGauge("longest_running_processor_seconds",
		"Seconds the longest-running worker of the queue has spent on its current key.")
	wqRetries = wqCounter("retries_total", "Rate-limited re-adds (retries) the workqueue handled, by queue name.")

	workqueueCollectors = []prometheus.Collector{wqDepth, wqAdds, wqQueue, wqWork, wqStuck, wqLongest, wqRetries}
)

// Every workqueue_* family is labelled by the queue's name alone.
var wqLabels = []string{"name"}

func wqGauge(name, help string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: "workqueue", Name: name, Help: help}, wqLabels)
}

func wqCounter(name, help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: "workqueue", Name: name, Help: help}, wqLabels)
}

// wqHistogram has component-base's buckets: 10ns to 1000s, by tens.
func wqHistogram(name, help string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: "workqueue", Name: name, Help: help, Buckets: prometheus.ExponentialBuckets(10e-9, 10, 12),
	}, wqLabels)
}

// installWorkqueueMetrics makes client-go report every named queue created
// from now on to the workqueue_* vectors. client-go keeps the first
// provider a process sets and ignores the others, and a queue created
// before it reports nothing: the agent calls NewMetrics first thing.
func installWorkqueueMetrics() { workqueue.SetProvider(wqProvider{}) }

// wqProvider is client-go's MetricsProvider over the vectors above; a
// queue's name (pkg/kube/controller.New's name) is its label.
type wqProvider struct{}

func (wqProvider) NewDepthMetric(n string) workqueue.GaugeMetric  { return wqDepth.WithLabelValues(n) }
func (wqProvider) NewAddsMetric(n string) workqueue.CounterMetric { return wqAdds.WithLabelValues(n) }
func (wqProvider) NewLatencyMetric(n string) workqueue.HistogramMetric {
	return wqQueue.WithLabelValues(n)
}
func (wqProvider) NewWorkDurationMetric(n string) workqueue.HistogramMetric {
	return wqWork.WithLabelValues(n)
}
func (wqProvider) NewRetriesMetric(n string) workqueue.CounterMetric {
	return wqRetries.WithLabelValues(n)
}
func (wqProvider) NewUnfinishedWorkSecondsMetric(n string) workqueue.SettableGaugeMetric {
	return wqStuck.WithLabelValues(n)
}
func (wqProvider) NewLongestRunningProcessorSecondsMetric(n string) workqueue.SettableGaugeMetric {
	return wqLongest.WithLabelValues(n)
}
