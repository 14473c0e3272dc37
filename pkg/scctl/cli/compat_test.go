package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// countingPlane counts heartbeat reads; the rest is fakePlane's.
type countingPlane struct {
	*fakePlane
	heartbeats int
}

func (c *countingPlane) LatestHeartbeat(ctx context.Context) (protocol.Heartbeat, error) {
	c.heartbeats++
	return c.fakePlane.LatestHeartbeat(ctx)
}

func runWith(t *testing.T, cp ControlPlane, args ...string) run {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &App{
		Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader(""),
		Getenv:      func(string) string { return "" },
		Unreachable: func(err error) bool { return errors.Is(err, errTestUnreachable) },
		Dial:        func(context.Context, DialOptions) (ControlPlane, error) { return cp, nil },
	}
	code := app.Run(context.Background(), args)
	return run{code: code, stdout: out.String(), stderr: errOut.String()}
}

func heartbeatOf(release string, versions ...string) protocol.Heartbeat {
	apiVersion := protocol.APIVersion
	if len(versions) > 0 {
		apiVersion = versions[0]
	}
	return protocol.Heartbeat{Header: protocol.Header{APIVersion: apiVersion, Kind: protocol.KindHeartbeat},
		Cluster: "c1", AgentVersion: release, APIVersions: versions, Time: time.Now()}
}

// Every connection command that talks to the agent, with what it needs to
// get as far as sending.
var agentCommands = map[string][]string{
	"create": {"connection", "create", "storage-blob", "--connection", "c", "--target-id", storageID,
		"--secret", "connection-string=x", "--no-wait"},
	"update": {"connection", "update", "storage-blob", "--connection", "c", "--secret", "connection-string=x", "--no-wait"},
	"delete": {"connection", "delete", "--connection", "c", "--yes", "--no-wait"},
	"list":   {"connection", "list"}, "show": {"connection", "show", "--connection", "c"},
	"list-configuration": {"connection", "list-configuration", "--connection", "c"},
	"validate":           {"connection", "validate", "--connection", "c"},
	"wait":               {"connection", "wait", "--connection", "c", "--request-id", "r"},
}

// An agent that does not decode sc.v1 is refused by every connection
// command before anything is sent: exit 2, one sentence naming both
// releases and both protocols, no usage hint.
func TestConnectionCommandsRefuseAnAgentThatDoesNotSpeakOurVersion(t *testing.T) {
	stampVersion(t, "v0.2.0")
	for name, args := range agentCommands {
		t.Run(name, func(t *testing.T) {
			plane := &countingPlane{fakePlane: &fakePlane{heartbeat: heartbeatOf("v1.0.0", "sc.v2")}}
			r := runWith(t, plane, append(args, "--cluster", "c1")...)
			assert.Equal(t, ExitUsage, r.code, r.stderr)
			assert.Equal(t, `scctl: the agent of cluster "c1" (release v1.0.0) speaks sc.v2, not sc.v1, which this scctl `+
				"(release v0.2.0) speaks; nothing was sent: use an scctl that speaks sc.v2, such as release v1.0.0\n", r.stderr)
			assert.Empty(t, r.stdout)
			assert.Equal(t, 1, plane.heartbeats)
			assert.Empty(t, plane.queries, "nothing asked")
			assert.Empty(t, plane.created, "nothing sent")
			assert.Empty(t, plane.updated)
			assert.Empty(t, plane.deleted)
			assert.Empty(t, plane.waited)
			assert.True(t, plane.closed)
		})
	}
}

// An agent of another release that speaks sc.v1 gets one warning line on
// stderr per command, read from one heartbeat; the command runs as ever.
func TestConnectionCommandsWarnOnceAboutAnotherRelease(t *testing.T) {
	stampVersion(t, "v0.2.0")
	older := `scctl: warning: the agent of cluster "c1" runs release v0.1.0, older than this scctl (v0.2.0): ` +
		"what v0.2.0 added is not there until the agent is upgraded (helm upgrade)\n"
	newer := `scctl: warning: the agent of cluster "c1" runs release v0.3.0, newer than this scctl (v0.2.0): ` +
		"upgrade scctl to use what v0.3.0 added\n"
	for name, tc := range map[string]struct {
		hb      protocol.Heartbeat
		hbErr   error
		warning string
	}{
		"older (v0.1.0, no version fields)": {hb: protocol.Heartbeat{Header: protocol.NewHeader(protocol.KindHeartbeat), AgentVersion: "v0.1.0"}, warning: older},
		"newer, speaking sc.v1 too":         {hb: heartbeatOf("v0.3.0", "sc.v2", "sc.v1"), warning: newer},
		"same release":                      {hb: heartbeatOf("v0.2.0")},
		"agent a dev build":                 {hb: heartbeatOf("dev")},
		"agent release unknown":             {hb: heartbeatOf("")},
		"no heartbeat":                      {hbErr: fmt.Errorf("cluster c1: %w", errors.New("no heartbeat from agent"))},
	} {
		t.Run(name, func(t *testing.T) {
			plane := &countingPlane{fakePlane: &fakePlane{heartbeat: tc.hb, heartbeatErr: tc.hbErr}}
			r := runWith(t, plane, append(agentCommands["create"], "--cluster", "c1")...)
			require.Equal(t, ExitOK, r.code, r.stderr)
			assert.Equal(t, tc.warning, r.stderr)
			assert.Equal(t, 1, plane.heartbeats, "one heartbeat read")
			assert.Len(t, plane.created, 1, "the command ran")
			assert.Contains(t, r.stdout, "request req-1 sent")
		})
	}
}

func TestScctlDevBuildIsNotCompared(t *testing.T) {
	stampVersion(t, "dev")
	plane := &countingPlane{fakePlane: &fakePlane{heartbeat: heartbeatOf("v0.1.0")}}
	r := runWith(t, plane, append(agentCommands["create"], "--cluster", "c1")...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Empty(t, r.stderr)

	plane = &countingPlane{fakePlane: &fakePlane{heartbeat: heartbeatOf("dev", "sc.v2")}}
	r = runWith(t, plane, append(agentCommands["create"], "--cluster", "c1")...)
	assert.Equal(t, ExitUsage, r.code, "a dev build is not compared by release, but a protocol it cannot speak is still refused")
	assert.Contains(t, r.stderr, "(release dev) speaks sc.v2, not sc.v1")
}

// Commands that do not talk to an agent never read its heartbeat.
func TestOnlyConnectionCommandsCheckTheAgent(t *testing.T) {
	plane := &countingPlane{fakePlane: &fakePlane{heartbeat: heartbeatOf("v9.0.0", "sc.v9")}}
	r := runWith(t, plane, "connection", "list-support-types")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Zero(t, plane.heartbeats)

	r = runWith(t, plane, "version", "--cluster", "c1")
	require.Equal(t, ExitOK, r.code, "version reports an incompatible agent, it does not refuse it")
	assert.Equal(t, 1, plane.heartbeats, "version reads the heartbeat once, for its own output")
}

func TestCompareReleases(t *testing.T) {
	for _, tc := range []struct {
		a, b    string
		order   int
		ordered bool
	}{
		{"v0.1.0", "v0.2.0", -1, true},
		{"v0.10.0", "v0.9.9", 1, true},
		{"v1.0.0", "0.99.0", 1, true},
		{"v0.1.0", "0.1.0", 0, true},
		{"v0.2.0-rc.1", "v0.2.0", -1, true},
		{"v0.2.0-rc.2", "v0.2.0-rc.10", -1, true},
		{"v0.2.0-alpha", "v0.2.0-alpha.1", -1, true},
		{"v0.2.0-1", "v0.2.0-alpha", -1, true},
		{"v0.1.0-3-gabc1234", "v0.1.0", 1, true},
		{"v0.1.0-3-gabc1234", "v0.1.0-12-gdef5678", -1, true},
		{"v0.1.0-3-gabc1234-dirty", "v0.2.0", -1, true},
		{"v0.2.0-rc.1-4-gabc1234", "v0.2.0-rc.1", 1, true},
		{"v0.2.0-rc.1-4-gabc1234", "v0.2.0", -1, true},
		{"v0.1.0-3-gabc1234", "v0.1.0-3-gdef5678", 0, false},
		{"v0.1.0", "v0.1.0-dirty", 0, false},
		{"abc1234", "v0.1.0", 0, false},
		{"abc1234", "def5678", 0, false},
		{"v1", "v1.0.0", 0, false},
	} {
		order, ordered := compareReleases(tc.a, tc.b)
		assert.Equal(t, tc.ordered, ordered, "%s vs %s", tc.a, tc.b)
		assert.Equal(t, tc.order, order, "%s vs %s", tc.a, tc.b)
		if tc.ordered {
			back, _ := compareReleases(tc.b, tc.a)
			assert.Equal(t, -tc.order, back, "%s vs %s reversed", tc.b, tc.a)
		}
	}
}

func TestReleaseSkewWithoutAnOrder(t *testing.T) {
	assert.Equal(t, `the agent of cluster "c1" runs release abc1234, this scctl def5678; neither is known to be newer`,
		releaseSkew("c1", "abc1234", "def5678"))
	assert.Empty(t, releaseSkew("c1", "v0.1.0", "0.1.0"), "one release spelled two ways")
	assert.Empty(t, releaseSkew("c1", "v0.1.0", ""), "scctl's own release unknown")
}
