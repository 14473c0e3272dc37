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

// fixClock makes heartbeat ages deterministic.
func fixClock(t *testing.T, now time.Time) {
	old := clock
	clock = func() time.Time { return now }
	t.Cleanup(func() { clock = old })
}

func TestVersionWithoutClusterNeedsNoServer(t *testing.T) {
	stampVersion(t, "v1.4.0")
	r := runApp(t, nil, nil, "", false, "version")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Nil(t, r.dialed, "the client version needs no control plane")
	assert.Equal(t, "client  v1.4.0  (speaks sc.v1)\n", r.stdout)

	r = runApp(t, nil, nil, "", false, "version", "-o", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.JSONEq(t, `{"client":{"version":"v1.4.0","apiVersion":"sc.v1"}}`, r.stdout)
}

func TestVersionWithClusterReadsTheAgentsHeartbeat(t *testing.T) {
	stampVersion(t, "v1.4.0")
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	fixClock(t, at.Add(42*time.Second))
	plane := &fakePlane{heartbeat: protocol.Heartbeat{Header: protocol.NewHeader(protocol.KindHeartbeat), Cluster: "c1",
		AgentVersion: "v1.3.2", APIVersions: []string{"sc.v1"}, RecordSchema: 1, Pod: "sc-agent-0", Ready: true, Time: at}}
	r := runApp(t, plane, nil, "", false, "version", "--cluster", "c1")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, "client  v1.4.0  (speaks sc.v1)\n"+
		"agent   v1.3.2  (cluster c1, pod sc-agent-0, ready, speaks sc.v1, record schema 1, heartbeat 2025-03-01T12:00:00Z, 42s ago)\n", r.stdout)
	assert.Equal(t, `scctl: warning: the agent of cluster "c1" runs release v1.3.2, older than this scctl (v1.4.0): `+
		"what v1.4.0 added is not there until the agent is upgraded (helm upgrade)\n", r.stderr)
	assert.True(t, plane.closed)

	r = runApp(t, plane, map[string]string{"SCCTL_CLUSTER": "c1"}, "", false, "version", "-o", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	var got versionInfo
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.NotNil(t, got.Agent)
	assert.Equal(t, agentVersion{Cluster: "c1", Version: "v1.3.2", APIVersions: []string{"sc.v1"}, RecordSchema: 1,
		Pod: "sc-agent-0", Ready: true, Time: "2025-03-01T12:00:00Z", AgeSeconds: 42}, *got.Agent)
	assert.Equal(t, clientVersion{Version: "v1.4.0", APIVersion: "sc.v1"}, got.Client)
}

// An agent of v0.1.0 (commit ad02d28) sends neither apiVersions nor
// recordSchema: it is shown as sc.v1 / schema 1, which is what it speaks.
func TestVersionOfAV010Agent(t *testing.T) {
	stampVersion(t, "v0.2.0")
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	fixClock(t, at.Add(3*24*time.Hour+time.Hour))
	hb, err := protocol.DecodeHeartbeat([]byte(`{"apiVersion":"sc.v1","kind":"Heartbeat","cluster":"c1","agentVersion":"v0.1.0",` +
		`"pod":"sc-agent-0","leader":true,"ready":false,"connections":3,"time":"2025-03-01T12:00:00Z"}`))
	require.NoError(t, err)
	r := runApp(t, &fakePlane{heartbeat: hb}, nil, "", false, "version", "--cluster", "c1")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, "client  v0.2.0  (speaks sc.v1)\n"+
		"agent   v0.1.0  (cluster c1, pod sc-agent-0, not ready, speaks sc.v1, record schema 1, heartbeat 2025-03-01T12:00:00Z, 3d ago)\n", r.stdout)
	assert.Contains(t, r.stderr, "runs release v0.1.0, older than this scctl (v0.2.0)")
}

// `scctl version` is where one looks when a connection command refuses an
// agent: it prints the same reason as a warning and still succeeds.
func TestVersionOfAnIncompatibleAgentWarnsAndSucceeds(t *testing.T) {
	stampVersion(t, "v0.2.0")
	fixClock(t, time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC))
	plane := &fakePlane{heartbeat: protocol.Heartbeat{Header: protocol.Header{APIVersion: "sc.v2", Kind: protocol.KindHeartbeat},
		Cluster: "c1", AgentVersion: "v1.0.0", APIVersions: []string{"sc.v2"}, RecordSchema: 2, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	r := runApp(t, plane, nil, "", false, "version", "--cluster", "c1")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "agent   v1.0.0  (cluster c1, pod -, not ready, speaks sc.v2, record schema 2, heartbeat 2026-01-02T03:04:05Z, 55s ago)")
	assert.Equal(t, `scctl: warning: the agent of cluster "c1" (release v1.0.0) speaks sc.v2, not sc.v1, which this scctl (release v0.2.0) `+
		"speaks; nothing was sent: use an scctl that speaks sc.v2, such as release v1.0.0\n", r.stderr)
}

func TestHeartbeatAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 59 * time.Second: "59s", 61 * time.Second: "1m1s", 59*time.Minute + 59*time.Second: "59m59s",
		time.Hour: "1h0m", 47*time.Hour + 59*time.Minute: "47h59m", 48 * time.Hour: "2d", 400 * 24 * time.Hour: "400d",
	} {
		assert.Equal(t, want, age(d), d.String())
	}
}

// An agent older than the heartbeat's agentVersion field.
func TestVersionOfAnOldAgentIsUnknown(t *testing.T) {
	plane := &fakePlane{heartbeat: protocol.Heartbeat{Cluster: "c1", Time: time.Now()}}
	r := runApp(t, plane, nil, "", false, "version", "--cluster", "c1", "-o", "yaml")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "version: unknown")
	assert.Empty(t, r.stderr, "an unknown release is not compared")
}

// Without a heartbeat the client's version is still printed, and the exit
// code says the agent is not reachable.
func TestVersionWithoutHeartbeatExits3(t *testing.T) {
	stampVersion(t, "v1.4.0")
	plane := &fakePlane{heartbeatErr: fmt.Errorf("cluster c1: %w", errTestUnreachable)}
	r := runApp(t, plane, nil, "", false, "version", "--cluster", "c1")
	assert.Equal(t, ExitUnreachable, r.code)
	assert.Equal(t, "client  v1.4.0  (speaks sc.v1)\n", r.stdout)
	assert.Contains(t, r.stderr, `scctl: the agent of cluster "c1" is not reachable`)

	r = runApp(t, nil, nil, "", false, "version", "--cluster", "c1")
	assert.Equal(t, ExitUnreachable, r.code, "dial failing: the same")
	assert.Equal(t, "client  v1.4.0  (speaks sc.v1)\n", r.stdout)
}
