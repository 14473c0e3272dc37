package cli

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/version"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func stampVersion(t *testing.T, v string) {
	old := version.Version
	version.Version = v
	t.Cleanup(func() { version.Version = old })
}

func TestVersionWithoutClusterNeedsNoServer(t *testing.T) {
	stampVersion(t, "v1.4.0")
	r := runApp(t, nil, nil, "", false, "version")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Nil(t, r.dialed, "the client version needs no control plane")
	assert.Equal(t, "client  v1.4.0\n", r.stdout)

	r = runApp(t, nil, nil, "", false, "version", "-o", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.JSONEq(t, `{"client":{"version":"v1.4.0"}}`, r.stdout)
}

func TestVersionWithClusterReadsTheAgentsHeartbeat(t *testing.T) {
	stampVersion(t, "v1.4.0")
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	plane := &fakePlane{heartbeat: protocol.Heartbeat{Cluster: "c1", AgentVersion: "v1.3.2", Pod: "sc-agent-0", Ready: true, Time: at}}
	r := runApp(t, plane, nil, "", false, "version", "--cluster", "c1")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, "client  v1.4.0\n"+
		"agent   v1.3.2  (cluster c1, pod sc-agent-0, ready, heartbeat 2025-03-01T12:00:00Z)\n", r.stdout)
	assert.True(t, plane.closed)

	r = runApp(t, plane, map[string]string{"SCCTL_CLUSTER": "c1"}, "", false, "version", "-o", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	var got versionInfo
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.NotNil(t, got.Agent)
	assert.Equal(t, "v1.3.2", got.Agent.Version)
	assert.Equal(t, "v1.4.0", got.Client.Version)
}

// An agent older than the heartbeat's agentVersion field.
func TestVersionOfAnOldAgentIsUnknown(t *testing.T) {
	plane := &fakePlane{heartbeat: protocol.Heartbeat{Cluster: "c1", Time: time.Now()}}
	r := runApp(t, plane, nil, "", false, "version", "--cluster", "c1", "-o", "yaml")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "version: unknown")
}

// Without a heartbeat the client's version is still printed, and the exit
// code says the agent is not reachable.
func TestVersionWithoutHeartbeatExits3(t *testing.T) {
	stampVersion(t, "v1.4.0")
	plane := &fakePlane{heartbeatErr: fmt.Errorf("cluster c1: %w", errTestUnreachable)}
	r := runApp(t, plane, nil, "", false, "version", "--cluster", "c1")
	assert.Equal(t, ExitUnreachable, r.code)
	assert.Equal(t, "client  v1.4.0\n", r.stdout)
	assert.Contains(t, r.stderr, `scctl: the agent of cluster "c1" is not reachable`)

	r = runApp(t, nil, nil, "", false, "version", "--cluster", "c1")
	assert.Equal(t, ExitUnreachable, r.code, "dial failing: the same")
	assert.Equal(t, "client  v1.4.0\n", r.stdout)
}
