package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/version"
)

func TestStartLineNamesTheVersionAndNoPassword(t *testing.T) {
	old := version.Version
	version.Version = "v1.2.3"
	t.Cleanup(func() { version.Version = old })
	const password = "cred-VALUE-start"
	cfg, secret, err := parseConfig(chartArgs, envOf(map[string]string{
		"POD_NAME": "sc-agent-0", "SC_NATS_USER": "agent-c1", "SC_NATS_PASSWORD": password,
	}))
	require.NoError(t, err)

	var buf bytes.Buffer
	logStart(zerolog.New(&buf), cfg, secret)
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	assert.Equal(t, "starting", line["message"])
	assert.Equal(t, "v1.2.3", line["version"])
	assert.Equal(t, "c1", line["cluster"])
	assert.Equal(t, "user agent-c1", line["natsAuth"])
	assert.NotContains(t, buf.String(), password)
}
