package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/agent/heartbeat"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// scctl's agent check over a real embedded NATS server, with the real
// agent intake and query responder (startAgent): heartbeats of other
// releases are published as the cluster's agent user onto the status
// stream, exactly as an agent of that release would send them.
func TestOverNATSAgentReleaseChecks(t *testing.T) {
	stampVersion(t, "v0.2.0")
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	startAgent(t, srv)
	cp := devservertest.ControlPlane(t, srv, "c1", 2*time.Second)
	ctx := context.Background()
	require.Eventually(t, func() bool { _, err := cp.PublicKey(ctx); return err == nil },
		10*time.Second, 20*time.Millisecond, "the agent's responder answers")
	agent, js := devservertest.Agent(t, srv, "c1", zerolog.Nop())
	_, admin := devservertest.AdminConn(t, srv)
	// requests published so far; the stream is a work queue, so its last
	// sequence counts them, not its message count
	requests := func() uint64 {
		t.Helper()
		s, err := admin.Stream(ctx, protocol.RequestStream)
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		return info.State.LastSeq
	}
	publish := func(hb string) {
		t.Helper()
		_, err := js.Publish(ctx, protocol.HeartbeatSubject("c1"), []byte(hb))
		require.NoError(t, err)
	}
	create := func(name string) run {
		t.Helper()
		return runReal(t, srv, "connection", "create", "storage-blob", "--connection", name, "--kube-namespace", "team-a",
			"--target-id", storageID, "--secret", "connection-string=cred-VALUE-compat", "--no-wait")
	}

	// no heartbeat yet: nothing to compare, the command runs
	r := create("none")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Empty(t, r.stderr)
	assert.EqualValues(t, 1, requests())

	// the heartbeat of an agent built from this tree: same release, same protocol
	hbCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() {
		stopped <- heartbeat.Run(hbCtx, agent, heartbeat.Options{Cluster: "c1", Pod: "sc-agent-0", Interval: time.Hour,
			State: func() heartbeat.State { return heartbeat.State{Ready: true} }})
	}()
	require.Eventually(t, func() bool { _, err := cp.LatestHeartbeat(ctx); return err == nil },
		10*time.Second, 20*time.Millisecond, "the first heartbeat is stored")
	stop()
	require.NoError(t, <-stopped)
	r = create("same")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Empty(t, r.stderr, "same release: no warning")

	// v0.1.0 (commit ad02d28): no apiVersions, no recordSchema
	publish(`{"apiVersion":"sc.v1","kind":"Heartbeat","cluster":"c1","agentVersion":"v0.1.0","pod":"sc-agent-0",` +
		`"leader":true,"ready":true,"connections":2,"time":"2025-03-01T12:00:00Z"}`)
	r = create("older")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, `scctl: warning: the agent of cluster "c1" runs release v0.1.0, older than this scctl (v0.2.0): `+
		"what v0.2.0 added is not there until the agent is upgraded (helm upgrade)\n", r.stderr)
	assert.Contains(t, r.stdout, `request `, "the request went out")

	// a newer agent that still decodes sc.v1
	publish(`{"apiVersion":"sc.v1","kind":"Heartbeat","cluster":"c1","agentVersion":"v0.3.0","apiVersions":["sc.v1","sc.v2"],` +
		`"recordSchema":2,"leader":true,"ready":true,"connections":2,"time":"2026-01-01T00:00:00Z","shards":4}`)
	r = runReal(t, srv, "connection", "show", "--connection", "older", "-o", "json")
	assert.NotEqual(t, ExitUsage, r.code, r.stderr)
	assert.Equal(t, 1, strings.Count(r.stderr, "scctl: warning:"), r.stderr)
	assert.Contains(t, r.stderr, `runs release v0.3.0, newer than this scctl (v0.2.0): upgrade scctl to use what v0.3.0 added`)
	assert.EqualValues(t, 3, requests())

	// an agent that no longer decodes sc.v1: refused, nothing sent
	publish(`{"apiVersion":"sc.v2","kind":"Heartbeat","cluster":"c1","agentVersion":"v1.0.0","apiVersions":["sc.v2"],` +
		`"recordSchema":2,"time":"2026-06-01T00:00:00Z","status":{"ready":true}}`)
	r = create("refused")
	assert.Equal(t, ExitUsage, r.code, r.stderr)
	assert.Equal(t, `scctl: the agent of cluster "c1" (release v1.0.0) speaks sc.v2, not sc.v1, which this scctl (release v0.2.0) `+
		"speaks; nothing was sent: use an scctl that speaks sc.v2, such as release v1.0.0\n", r.stderr)
	assert.Empty(t, r.stdout)
	assert.EqualValues(t, 3, requests(), "no request was published")

	r = runReal(t, srv, "version")
	require.Equal(t, ExitOK, r.code, "version shows the agent it cannot talk to: %s", r.stderr)
	assert.Contains(t, r.stdout, "agent   v1.0.0  (cluster c1, pod -, not ready, speaks sc.v2, record schema 2, heartbeat 2026-06-01T00:00:00Z")
	assert.Contains(t, r.stderr, "speaks sc.v2, not sc.v1")

	// a development build of the agent is not compared
	publish(`{"apiVersion":"sc.v1","kind":"Heartbeat","cluster":"c1","agentVersion":"dev","apiVersions":["sc.v1"],` +
		`"recordSchema":1,"time":"2026-06-01T00:00:00Z"}`)
	r = create("dev")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Empty(t, r.stderr)
	assert.EqualValues(t, 4, requests())
}

// The binding flags over a real embedded NATS server with the real intake
// and query responder: an agent of this tree (whose heartbeat advertises
// binding) stores spec.binding and shows it; a v0.1.0 heartbeat makes the
// same flags refused before anything is published.
func TestOverNATSBindingNeedsTheAgentFeature(t *testing.T) {
	stampVersion(t, "v0.2.0")
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	startAgent(t, srv)
	cp := devservertest.ControlPlane(t, srv, "c1", 2*time.Second)
	ctx := context.Background()
	require.Eventually(t, func() bool { _, err := cp.PublicKey(ctx); return err == nil },
		10*time.Second, 20*time.Millisecond, "the agent's responder answers")
	agent, js := devservertest.Agent(t, srv, "c1", zerolog.Nop())
	_, admin := devservertest.AdminConn(t, srv)
	requests := func() uint64 {
		t.Helper()
		s, err := admin.Stream(ctx, protocol.RequestStream)
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		return info.State.LastSeq
	}

	hbCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() {
		stopped <- heartbeat.Run(hbCtx, agent, heartbeat.Options{Cluster: "c1", Pod: "sc-agent-0", Interval: time.Hour,
			State: func() heartbeat.State { return heartbeat.State{Ready: true} }})
	}()
	require.Eventually(t, func() bool { _, err := cp.LatestHeartbeat(ctx); return err == nil },
		10*time.Second, 20*time.Millisecond, "the first heartbeat is stored")
	stop()
	require.NoError(t, <-stopped)

	r := runReal(t, srv, "connection", "create", "storage-blob", "--connection", "bound", "--kube-namespace", "team-a",
		"--target-id", storageID, "--secret", "connection-string=cred-VALUE-bind",
		"--workload", "deployment/app,container=web", "--workload", "cronjob/nightly", "--binding-mode", "volume")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, `connection "bound": Succeeded`)
	assert.EqualValues(t, 1, requests())

	r = runReal(t, srv, "connection", "show", "--connection", "bound")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Regexp(t, `(?m)^Binding mode:\s+volume$`, r.stdout)
	assert.Regexp(t, `(?m)^Bound workloads:\s+Deployment/app \(containers web\)\n\s+CronJob/nightly$`, r.stdout)

	r = runReal(t, srv, "connection", "list-configuration", "--connection", "bound")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Regexp(t, `AZURE_STORAGEBLOB_CONNECTIONSTRING\s+<hidden>\s+volume: Deployment/app \(containers web\), CronJob/nightly`, r.stdout)

	r = runReal(t, srv, "connection", "update", "storage-blob", "--connection", "bound",
		"--secret", "connection-string=cred-VALUE-bind", "--unbind")
	require.Equal(t, ExitOK, r.code, r.stderr)
	r = runReal(t, srv, "-o", "json", "connection", "show", "--connection", "bound")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.NotContains(t, r.stdout, `"binding"`, "--unbind cleared it")
	assert.EqualValues(t, 2, requests())

	// v0.1.0 would drop spec.binding: refused, nothing published
	_, err := js.Publish(ctx, protocol.HeartbeatSubject("c1"), []byte(`{"apiVersion":"sc.v1","kind":"Heartbeat","cluster":"c1",`+
		`"agentVersion":"v0.1.0","pod":"sc-agent-0","leader":true,"ready":true,"connections":1,"time":"2025-03-01T12:00:00Z"}`))
	require.NoError(t, err)
	r = runReal(t, srv, "connection", "update", "storage-blob", "--connection", "bound",
		"--secret", "connection-string=cred-VALUE-bind", "--workload", "deployment/app", "--no-wait")
	assert.Equal(t, ExitUsage, r.code, r.stderr)
	assert.Contains(t, r.stderr, `scctl: the agent of cluster "c1" (release v0.1.0) does not bind workloads`)
	assert.Empty(t, r.stdout)
	assert.EqualValues(t, 2, requests(), "no request was published")

	// without binding flags the same agent is still talked to
	r = runReal(t, srv, "connection", "update", "storage-blob", "--connection", "bound",
		"--secret", "connection-string=cred-VALUE-bind", "--no-wait")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.EqualValues(t, 3, requests())
	assert.NotContains(t, r.stdout+r.stderr, "cred-VALUE")
}
