package health

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/kube/controller"
)

// scrape is m's /metrics page as Prometheus reads it: sample lines by
// series (name and labels as printed), and the TYPE of each family.
func scrape(t *testing.T, m *Metrics) (samples map[string]float64, types map[string]string) {
	t.Helper()
	code, body := get(t, NewServer(":0", m, zerolog.Nop()).Handler(), "/metrics")
	require.Equal(t, http.StatusOK, code)
	samples, types = map[string]float64{}, map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			types[name] = typ
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		samples[line[:i]] = v
	}
	return samples, types
}

var runs atomic.Int64

// TestWorkqueueMetricsFollowARealQueue drives a real pkg/kube/controller
// queue and reads client-go's workqueue_* metrics off the agent's /metrics:
// NewMetrics set the provider, so a queue created afterwards reports under
// its name, with name as its only label.
func TestWorkqueueMetricsFollowARealQueue(t *testing.T) {
	m := NewMetrics()
	// The series are process-wide: a name of its own per run (-count=N).
	name := fmt.Sprintf("test-workqueue-metrics-%d", runs.Add(1))
	failedOnce := false
	w := controller.New(name, func(_ context.Context, key string) (controller.Result, error) {
		if key == "a" && !failedOnce {
			failedOnce = true
			return controller.Result{}, controller.ErrRequeue
		}
		return controller.Result{}, nil
	}, controller.Options[string]{
		RateLimiter: controller.RateLimiter[string](time.Millisecond, time.Millisecond, 1000, 1000),
		Log:         zerolog.Nop(),
	})
	t.Cleanup(w.Queue().ShutDown)
	sel := `{name="` + name + `"}`

	samples, types := scrape(t, m)
	for family, typ := range map[string]string{
		"workqueue_depth":                             "gauge",
		"workqueue_adds_total":                        "counter",
		"workqueue_queue_duration_seconds":            "histogram",
		"workqueue_work_duration_seconds":             "histogram",
		"workqueue_unfinished_work_seconds":           "gauge",
		"workqueue_longest_running_processor_seconds": "gauge",
		"workqueue_retries_total":                     "counter",
	} {
		assert.Equal(t, typ, types[family], family)
		s := family + sel
		if typ == "histogram" {
			s = family + "_count" + sel
		}
		assert.Contains(t, samples, s, "the series exists as soon as the queue does")
	}

	w.Add("a")
	w.Add("b")
	samples, _ = scrape(t, m)
	assert.Equal(t, 2.0, samples["workqueue_depth"+sel])
	assert.Equal(t, 2.0, samples["workqueue_adds_total"+sel])

	// a fails once (a rate-limited re-add), b succeeds, then a again:
	// Get blocks until a's backoff has put it back.
	for range 3 {
		require.True(t, w.ProcessNextWorkItem(context.Background()))
	}
	assert.True(t, failedOnce)
	samples, _ = scrape(t, m)
	assert.Equal(t, 0.0, samples["workqueue_depth"+sel])
	assert.Equal(t, 3.0, samples["workqueue_adds_total"+sel], "two adds and the retry's re-add")
	assert.Equal(t, 1.0, samples["workqueue_retries_total"+sel])
	assert.Equal(t, 3.0, samples["workqueue_queue_duration_seconds_count"+sel])
	assert.Equal(t, 3.0, samples["workqueue_work_duration_seconds_count"+sel])

	// Every registry NewMetrics builds gathers the same process-wide series.
	samples, _ = scrape(t, NewMetrics())
	assert.Equal(t, 3.0, samples["workqueue_adds_total"+sel])
}

func TestRequestAndJobRunMetrics(t *testing.T) {
	m := NewMetrics()
	samples, types := scrape(t, m)
	assert.Equal(t, "histogram", types["sc_agent_request_duration_seconds"])
	assert.Equal(t, "gauge", types["sc_agent_requests_held"])
	assert.Equal(t, "histogram", types["sc_agent_job_run_duration_seconds"])
	// Known label values are exported, at zero, before anything happens.
	for _, s := range []string{
		`sc_agent_request_duration_seconds_count{outcome="acked"}`,
		`sc_agent_request_duration_seconds_count{outcome="terminated"}`,
		`sc_agent_job_run_duration_seconds_count{result="succeeded"}`,
		`sc_agent_job_run_duration_seconds_count{result="failed"}`,
		`sc_agent_requests_held`,
	} {
		v, ok := samples[s]
		assert.True(t, ok, s)
		assert.Zero(t, v, s)
	}

	m.AddRequestsHeld(3)
	m.AddRequestsHeld(-1)
	m.RequestFinished(RequestAcked, 20*time.Millisecond)
	m.RequestFinished(RequestAcked, 2*time.Second)
	m.RequestFinished(RequestTerminated, time.Millisecond)
	m.JobRunFinished(JobSucceeded, 12*time.Second)
	m.JobRunFinished(JobFailed, -time.Second) // clock skew between nodes: counted as 0

	samples, _ = scrape(t, m)
	for s, want := range map[string]float64{
		`sc_agent_requests_held`:                                               2,
		`sc_agent_request_duration_seconds_count{outcome="acked"}`:             2,
		`sc_agent_request_duration_seconds_bucket{outcome="acked",le="0.025"}`: 1,
		`sc_agent_request_duration_seconds_count{outcome="terminated"}`:        1,
		`sc_agent_job_run_duration_seconds_count{result="succeeded"}`:          1,
		`sc_agent_job_run_duration_seconds_sum{result="succeeded"}`:            12,
		`sc_agent_job_run_duration_seconds_count{result="failed"}`:             1,
		`sc_agent_job_run_duration_seconds_sum{result="failed"}`:               0,
	} {
		assert.Equal(t, want, samples[s], s)
	}
}
