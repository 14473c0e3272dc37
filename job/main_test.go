package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUsageErrorsExitTwo(t *testing.T) {
	assert.Equal(t, exitUsage, run([]string{"--no-such-flag"}))
	assert.Equal(t, exitUsage, run([]string{"--log-level=loud"}))
	assert.Equal(t, exitUsage, run([]string{"--log-format=yaml"}))
	assert.Equal(t, exitUsage, run([]string{"--namespace="}))
	// Outside a cluster and without a kubeconfig there is nothing to talk to.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	assert.Equal(t, exitUsage, run([]string{"--kubeconfig="}))
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
