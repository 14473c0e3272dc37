package intake_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

// gathered reads reg as Prometheus would: each series by name and labels
// (`name{k="v",...}`), a histogram as its sample count under name_count,
// and each family's type.
func gathered(t *testing.T, reg prometheus.Gatherer) (samples map[string]float64, types map[string]string) {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	samples, types = map[string]float64{}, map[string]string{}
	for _, f := range families {
		types[f.GetName()] = strings.ToLower(f.GetType().String())
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			sel := ""
			if len(labels) > 0 {
				sel = "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetHistogram() != nil:
				samples[f.GetName()+"_count"+sel] = float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				samples[f.GetName()+sel] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				samples[f.GetName()+sel] = m.GetGauge().GetValue()
			}
		}
	}
	return samples, types
}

// The intake's metrics follow real requests on the real request stream:
// requests queued behind a held apply count as held, each one finished is
// observed once under how it ended, the intake's workqueue reports under
// its name, and requests handed back at shutdown leave the gauge at zero
// without being observed as finished.
func TestIntakeMetricsFollowRequests(t *testing.T) {
	m := health.NewMetrics() // before the intake's queue: it sets client-go's provider
	reg := m.Registry()
	before, _ := gathered(t, reg)
	const (
		held       = "sc_agent_requests_held"
		acked      = `sc_agent_request_duration_seconds_count{outcome="acked"}`
		terminated = `sc_agent_request_duration_seconds_count{outcome="terminated"}`
		adds       = `workqueue_adds_total{name="intake"}`
	)

	e := newEnv(t, devserver.Options{})
	// Every Apply waits at the current hold; a released hold lets them by.
	var current atomic.Pointer[hold]
	h := newHold()
	current.Store(h)
	g := &gate{before: func(ctx context.Context, ch connection.Change) error { return current.Load().wait(ctx, ch.RequestID) }}
	stop, _ := e.agent(true, g.use, func(o *intake.Options) { o.Metrics = m })
	ctx := ctxT(t)
	specA, creds := e.spec("bloba")
	events := e.statuses("bloba")

	// a's create is held mid-apply; its two updates queue behind it.
	create, err := e.cp.Create(ctx, specA, creds)
	require.NoError(t, err)
	require.Equal(t, create, recv(t, h.entered, "a's create held"))
	var updates []string
	for i := range 2 {
		specA.Annotations = map[string]string{"rev": fmt.Sprint(i)}
		id, err := e.cp.Update(ctx, specA, creds)
		require.NoError(t, err)
		updates = append(updates, id)
	}
	// One request refused for good: terminated, never stored.
	denied, _ := e.spec("blobc")
	denied.Scope = "kube-system"
	_, err = e.cp.Create(ctx, denied, creds)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		s, _ := gathered(t, reg)
		return s[terminated] == 1 && s[held] == 3
	}, 15*time.Second, 10*time.Millisecond, "a's three requests held, c's terminated")
	s, _ := gathered(t, reg)
	assert.Zero(t, s[acked], "nothing of a's finished while its create is held")

	close(h.release)
	await(t, events, "a's last update accepted", accepted(updates[1]))
	e.settled()
	require.Eventually(t, func() bool {
		s, _ := gathered(t, reg)
		return s[acked] == 3
	}, 15*time.Second, 10*time.Millisecond, "a's three requests acked")
	s, types := gathered(t, reg)
	assert.Equal(t, 0.0, s[held])
	assert.Equal(t, 1.0, s[terminated])
	// a's key is added when its create arrives and again after each of its
	// first two requests; c's once.
	assert.Equal(t, 4.0, s[adds]-before[adds], "workqueue adds of the intake's queue")
	assert.Equal(t, map[string]string{
		"sc_agent_requests_held":            "gauge",
		"sc_agent_request_duration_seconds": "histogram",
		"workqueue_adds_total":              "counter",
		"workqueue_depth":                   "gauge",
		"workqueue_queue_duration_seconds":  "histogram",
		"workqueue_work_duration_seconds":   "histogram",
	}, map[string]string{
		"sc_agent_requests_held":            types["sc_agent_requests_held"],
		"sc_agent_request_duration_seconds": types["sc_agent_request_duration_seconds"],
		"workqueue_adds_total":              types["workqueue_adds_total"],
		"workqueue_depth":                   types["workqueue_depth"],
		"workqueue_queue_duration_seconds":  types["workqueue_queue_duration_seconds"],
		"workqueue_work_duration_seconds":   types["workqueue_work_duration_seconds"],
	})

	// A request held when the agent stops is handed back: no longer held,
	// and not observed as finished (its next delivery finishes it).
	hb := newHold()
	current.Store(hb)
	next, err := e.cp.Update(ctx, specA, creds)
	require.NoError(t, err)
	require.Equal(t, next, recv(t, hb.entered, "the next update held"))
	s, _ = gathered(t, reg)
	assert.Equal(t, 1.0, s[held])
	stop()
	s, _ = gathered(t, reg)
	assert.Equal(t, 0.0, s[held], "handed back at shutdown")
	assert.Equal(t, 3.0, s[acked])
	assert.Equal(t, 1.0, s[terminated])
}
