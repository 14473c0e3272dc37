package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
)

func TestUsageErrorsExitTwo(t *testing.T) {
	assert.Equal(t, exitUsage, run([]string{"--no-such-flag"}))
	assert.Equal(t, exitUsage, run([]string{"--log-level=loud"}))
	assert.Equal(t, exitUsage, run([]string{"--log-format=yaml"}))
	assert.Equal(t, exitUsage, run([]string{"--namespace="}))
	assert.Equal(t, exitUsage, run([]string{"--workers=0"}))
	assert.Equal(t, exitUsage, run([]string{"--qps=0"}))
	assert.Equal(t, exitUsage, run([]string{"--burst=0"}))
	assert.Equal(t, exitUsage, run([]string{"--rerender-qps=-1"}))
	assert.Equal(t, exitUsage, run([]string{"--rerender-burst=0"}))
	assert.Equal(t, exitUsage, run([]string{"--linger=-1s"}))
	assert.Equal(t, exitUsage, run([]string{"--linger=soon"}))
	assert.Equal(t, exitUsage, run([]string{"--max-run=0s"}))
	// Outside a cluster and without a kubeconfig there is nothing to talk to.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	assert.Equal(t, exitUsage, run([]string{"--kubeconfig="}))
}

// Due work and the re-render each have a budget: the API server may see
// both at once, and every group's client draws on the same two buckets
// (the dynamic client, built by rest.RESTClientFor, keeps it too).
// --rerender-qps=0 puts both in one, as before the re-render had its own.
func TestLimitGivesTheReRenderABudgetOfItsOwn(t *testing.T) {
	cfg := &rest.Config{Host: "https://example.invalid"}
	limit(cfg, 500, 1000, 200, 200)
	require.NotNil(t, cfg.RateLimiter)
	assert.InDelta(t, 700, cfg.RateLimiter.QPS(), 0.001, "due work's 500/s and the re-render's 200/s")
	typed, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	assert.Same(t, cfg.RateLimiter, typed.CoreV1().RESTClient().GetRateLimiter())
	assert.Same(t, cfg.RateLimiter, typed.BatchV1().RESTClient().GetRateLimiter())

	limit(cfg, 500, 1000, 0, 0)
	assert.InDelta(t, 500, cfg.RateLimiter.QPS(), 0.001, "one shared budget")
}

func TestLogFormats(t *testing.T) {
	var buf bytes.Buffer
	log, summary, err := newLog(&buf, "json", "info")
	require.NoError(t, err)
	assert.Nil(t, summary, "JSON mode: the summary is a JSON entry, not a plain line")
	log.Debug().Msg("hidden")
	log.Info().Msg("shown")
	var m map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &m), "exactly one JSON line: %q", buf.String())
	assert.Equal(t, "sc-job", m["component"])
	assert.Equal(t, "shown", m["message"])

	buf.Reset()
	log, summary, err = newLog(&buf, "text", "debug")
	require.NoError(t, err)
	assert.Same(t, &buf, summary, "text mode ends with the plain summary line on the same stream")
	log.Debug().Str("connection", "db1").Str("step", "apply").Int64("generation", 2).Msg(`connection "db1": rendered 1 objects`)
	log.Warn().Str("connection", "db1").Str("reason", "Retrying").Msg(`connection "db1": retrying`)
	assert.Regexp(t, `^\S+ DBG connection "db1": rendered 1 objects\n\S+ WRN connection "db1": retrying reason=Retrying\n$`, buf.String(),
		"text lines leave out the fields their words already say")
}

// sc-job takes the agent's namespace policy from the flags the launcher and
// the Helm hook pass; --namespace is the release namespace.
func TestNamespacePolicyFlags(t *testing.T) {
	p, err := namespacePolicy("sc-system", "team-a, team-b,", "payments")
	require.NoError(t, err)
	assert.Equal(t, namespaces.Policy{Release: "sc-system", Watch: []string{"team-a", "team-b"}, Denied: []string{"payments"}}, p)
	assert.ErrorIs(t, p.Allows("sc-system"), namespaces.ErrNotAllowed)
	assert.ErrorIs(t, p.Allows("team-c"), namespaces.ErrNotAllowed)

	p, err = namespacePolicy("ext", "", "")
	require.NoError(t, err)
	assert.Equal(t, namespaces.Policy{Release: "ext"}, p)

	_, err = namespacePolicy("sc-system", "Team-A", "")
	require.ErrorIs(t, err, namespaces.ErrInvalidPolicy)
	assert.Contains(t, err.Error(), `--watch-namespaces/--denied-namespaces: invalid namespace policy: watchNamespaces: "Team-A"`)
}
