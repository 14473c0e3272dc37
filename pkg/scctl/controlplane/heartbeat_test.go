package controlplane_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Heartbeats of other releases, published as the cluster's agent user onto
// the real status stream: the one of v0.1.0 (commit ad02d28, no version
// fields) reads as sc.v1 / schema 1, and one of an envelope version this
// build does not decode still yields the agent's release and versions.
func TestLatestHeartbeatOfOtherReleases(t *testing.T) {
	srv := start(t)
	cp := devservertest.ControlPlane(t, srv, cluster, 2*time.Second)
	_, js := devservertest.Agent(t, srv, cluster, zerolog.Nop())
	ctx := context.Background()
	publish := func(data string) {
		t.Helper()
		_, err := js.Publish(ctx, protocol.HeartbeatSubject(cluster), []byte(data))
		require.NoError(t, err)
	}

	publish(`{"apiVersion":"sc.v1","kind":"Heartbeat","cluster":"c1","agentVersion":"v0.1.0","pod":"sc-agent-0",` +
		`"leader":true,"ready":true,"connections":3,"time":"2025-03-01T12:00:00Z"}`)
	hb, err := cp.LatestHeartbeat(ctx)
	require.NoError(t, err)
	assert.Equal(t, "v0.1.0", hb.AgentVersion)
	assert.Equal(t, []string{"sc.v1"}, hb.Versions())
	assert.True(t, hb.Speaks(protocol.APIVersion))
	assert.Equal(t, 1, hb.Schema())
	assert.Equal(t, 3, hb.Connections)

	publish(`{"apiVersion":"sc.v2","kind":"Heartbeat","cluster":"c1","agentVersion":"v1.0.0","apiVersions":["sc.v2"],` +
		`"recordSchema":2,"time":"2026-01-02T03:04:05Z","connections":{"total":3}}`)
	hb, err = cp.LatestHeartbeat(ctx)
	require.NoError(t, err, "a newer heartbeat is read, not refused")
	assert.Equal(t, "v1.0.0", hb.AgentVersion)
	assert.False(t, hb.Speaks(protocol.APIVersion))
	assert.Equal(t, []string{"sc.v2"}, hb.Versions())
	assert.Equal(t, 2, hb.Schema())

	publish(`{"apiVersion":"sc.v1","kind":"Heartbeat","connections":"three"}`)
	_, err = cp.LatestHeartbeat(ctx)
	require.ErrorIs(t, err, protocol.ErrInvalidEnvelope, "a broken sc.v1 heartbeat is still an error")
	assert.Contains(t, err.Error(), "heartbeat of cluster c1")
}
