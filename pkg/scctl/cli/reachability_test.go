package cli

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/agent/heartbeat"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// A control plane that is down is exit 3, like an agent that does not
// answer, and says which server it tried; it fails fast, not at --timeout.
func TestOverNATSServerDownExits3(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	srv.Shutdown()
	const timeout = 20 * time.Second
	for _, args := range [][]string{
		{"connection", "list"},
		{"version"}, // --cluster from SCCTL_CLUSTER
	} {
		start := time.Now()
		r := runReal(t, srv, append(args, "--timeout", timeout.String())...)
		assert.Equal(t, ExitUnreachable, r.code, "%v: %s", args, r.stderr)
		assert.Less(t, time.Since(start), timeout/4, "%v must fail fast", args)
		assert.Contains(t, r.stderr, "scctl: the control plane at "+srv.ClientURL()+" is not reachable")
		assert.NotContains(t, r.stderr, srv.Admin().Password)
	}
}

// A --server list with passwords in its URLs: none of them is printed.
func TestServerListPasswordsAreRedacted(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	srv.Shutdown()
	host := strings.TrimPrefix(srv.ClientURL(), "nats://")
	list := "nats://admin:first-SECRET@" + host + ",nats://admin:second-SECRET@" + host
	r := runReal(t, srv, "connection", "list", "--server", list, "--user", "", "--password", "")
	assert.Equal(t, ExitUnreachable, r.code, r.stderr)
	assert.Contains(t, r.stderr, "nats://admin:xxxxx@"+host+",nats://admin:xxxxx@"+host)
	assert.NotContains(t, r.stderr, "SECRET")
}

// Wrong credentials reach the server: that is not "unreachable".
func TestOverNATSBadCredentialsExit1(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	r := runReal(t, srv, "connection", "list", "--password", "wrong-password")
	assert.Equal(t, ExitFailed, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "not reachable")
}

// The agent's version travels in its heartbeat and `scctl version` prints it.
func TestOverNATSVersionFromHeartbeat(t *testing.T) {
	stampVersion(t, "v2.0.1")
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	agent, _ := devservertest.Agent(t, srv, "c1", zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() {
		stopped <- heartbeat.Run(ctx, agent, heartbeat.Options{Cluster: "c1", Pod: "sc-agent-0", Interval: time.Hour,
			State: func() heartbeat.State { return heartbeat.State{Leader: true, Ready: true} }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("heartbeat: %v", err)
		}
	})

	var r run
	require.Eventually(t, func() bool {
		r = runReal(t, srv, "version", "-o", "json")
		return r.code == ExitOK
	}, 10*time.Second, 20*time.Millisecond, "the first heartbeat is stored: %s", r.stderr)
	var got versionInfo
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.NotNil(t, got.Agent)
	assert.Equal(t, agentVersion{Cluster: "c1", Version: "v2.0.1", APIVersions: []string{protocol.APIVersion},
		RecordSchema: record.SchemaVersion, Pod: "sc-agent-0", Ready: true, Time: got.Agent.Time, AgeSeconds: got.Agent.AgeSeconds}, *got.Agent,
		"an agent built from this tree reports pkg/version.Version, the envelope versions it decodes and its record schema")
	assert.Equal(t, clientVersion{Version: "v2.0.1", APIVersion: protocol.APIVersion}, got.Client)
	assert.Empty(t, r.stderr, "same release: no warning")
}
