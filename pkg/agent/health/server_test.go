package health

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	return rec.Code, string(body)
}

func TestHealthzAlwaysOK(t *testing.T) {
	s := NewServer(":0", nil, zerolog.Nop())
	s.AddReadyCheck("nats", func(context.Context) error { return errors.New("not connected") })
	code, body := get(t, s.Handler(), "/healthz")
	assert.Equal(t, http.StatusOK, code, "liveness must not depend on readiness")
	assert.Equal(t, "ok\n", body)
}

func TestReadyzReportsEveryCheck(t *testing.T) {
	s := NewServer(":0", nil, zerolog.Nop())
	nats := NewFlag("NATS not connected")
	synced := NewFlag("informer caches not synced")
	key := NewFlag("agent key not loaded")
	s.AddReadyCheck("nats", nats.Check)
	s.AddReadyCheck("informers", synced.Check)
	s.AddReadyCheck("agent-key", key.Check)

	code, body := get(t, s.Handler(), "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "[-]nats failed: NATS not connected")
	assert.Contains(t, body, "[-]agent-key failed: agent key not loaded")

	nats.Set(true)
	synced.Set(true)
	code, body = get(t, s.Handler(), "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code, "one failing check keeps the pod unready")
	assert.Contains(t, body, "[+]nats ok")
	assert.Contains(t, body, "[-]agent-key failed")

	key.Set(true)
	code, body = get(t, s.Handler(), "/readyz")
	assert.Equal(t, http.StatusOK, code, body)
	assert.NotContains(t, body, "[-]")

	nats.Set(false)
	code, _ = get(t, s.Handler(), "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code, "losing NATS makes the pod unready again")
}

func TestReadyzChecksSeeADeadline(t *testing.T) {
	s := NewServer(":0", nil, zerolog.Nop())
	s.AddReadyCheck("slow", func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("no deadline")
		}
		return nil
	})
	code, body := get(t, s.Handler(), "/readyz")
	assert.Equal(t, http.StatusOK, code, body)
}

func TestMetricsExposeAgentCounters(t *testing.T) {
	m := NewMetrics()
	m.RequestProcessed(OutcomeApplied)
	m.RequestProcessed(OutcomeApplied)
	m.RequestProcessed(OutcomeInvalid)
	m.StatusPublished("Succeeded")
	m.JobLaunched(LaunchNew)
	m.JobLaunched(LaunchReplaced)
	m.DriftDetected("Secret", ChangeDeleted)
	m.DriftDetected("ServiceAccount", ChangeReplaced)
	m.SetLeader(true)

	assert.Equal(t, 2.0, testutil.ToFloat64(m.requests.WithLabelValues(OutcomeApplied)))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.leader))

	s := NewServer(":0", m, zerolog.Nop())
	code, body := get(t, s.Handler(), "/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		`sc_agent_requests_processed_total{outcome="applied"} 2`,
		`sc_agent_requests_processed_total{outcome="invalid"} 1`,
		`sc_agent_status_events_published_total{phase="Succeeded"} 1`,
		`sc_agent_jobs_launched_total{reason="new"} 1`,
		`sc_agent_jobs_launched_total{reason="replaced"} 1`,
		`sc_agent_drift_detections_total{change="deleted",kind="Secret"} 1`,
		`sc_agent_drift_detections_total{change="replaced",kind="ServiceAccount"} 1`,
		`sc_agent_leader 1`,
		`go_goroutines`,
	} {
		assert.Contains(t, body, want)
	}

	m.SetLeader(false)
	_, body = get(t, s.Handler(), "/metrics")
	assert.Contains(t, body, "sc_agent_leader 0")
}

func TestNilMetricsAreNoOps(t *testing.T) {
	var m *Metrics
	m.RequestProcessed(OutcomeApplied)
	m.JobLaunched(LaunchNew)
	m.DriftDetected("Secret", ChangeModified)
	m.StatusPublished("Pending")
	m.SetLeader(true)
	code, _ := get(t, NewServer(":0", m, zerolog.Nop()).Handler(), "/metrics")
	assert.Equal(t, http.StatusNotFound, code)
}

func TestServeStopsOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := NewServer("", NewMetrics(), zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, "ok", strings.TrimSpace(string(body)))

	cancel()
	require.NoError(t, <-done)
	resp, err = http.Get("http://" + ln.Addr().String() + "/healthz")
	if err == nil {
		_ = resp.Body.Close()
	}
	assert.Error(t, err, "listener closed after shutdown")
}
