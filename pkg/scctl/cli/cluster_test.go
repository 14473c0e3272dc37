package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/natscluster"
	"github.com/sc-extension/sc-extension/pkg/agent/heartbeat"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// scctl runs one scctl command line with env as its environment.
func scctl(t *testing.T, env map[string]string, args ...string) run {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &App{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	code := app.Run(context.Background(), args)
	return run{code: code, stdout: out.String(), stderr: errOut.String()}
}

// secretCreds reads the creds out of a Secret manifest `cluster add` wrote.
func secretCreds(t *testing.T, path string) string {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var s corev1.Secret
	require.NoError(t, yaml.UnmarshalStrict(raw, &s))
	assert.Equal(t, devserver.SecretName, s.Name)
	creds := filepath.Join(t.TempDir(), "agent.creds")
	require.NoError(t, os.WriteFile(creds, []byte(s.StringData["creds"]), 0o600))
	return creds
}

// startBeatingAgent connects as the cluster's agent does (natsbus.Connect, which
// retries forever) and sends heartbeats saying phases, until the test ends.
func startBeatingAgent(t *testing.T, urls, cluster, creds string, phases map[string]int) *nats.Conn {
	t.Helper()
	var logs devservertest.LogBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent %s log:\n%s", cluster, logs.String())
		}
	})
	nc, _, err := natsbus.Connect(context.Background(), natsbus.Options{URL: urls, Cluster: cluster, CredsFile: creds,
		Logger: logs.Logger(), MaxReconnectWait: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.Eventually(t, nc.IsConnected, 10*time.Second, 5*time.Millisecond, "agent %s connected", cluster)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- heartbeat.Run(ctx, nc, heartbeat.Options{Cluster: cluster, Version: "v9.9.9", Interval: 50 * time.Millisecond,
			State: func() heartbeat.State {
				n := 0
				for _, c := range phases {
					n += c
				}
				return heartbeat.State{Leader: true, Ready: true, Connections: n, Phases: phases}
			}})
	}()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
	return nc
}

func listJSON(t *testing.T, env map[string]string, extra ...string) map[string]clusterView {
	t.Helper()
	r := scctl(t, env, append([]string{"cluster", "list", "-o", "json"}, extra...)...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	var views []clusterView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &views), r.stdout)
	out := map[string]clusterView{}
	for _, v := range views {
		out[v.Cluster] = v
	}
	return out
}

// clusterLifecycle is what both tests prove, on one server or three:
// add at runtime (consumer, credentials, Secret, helm command), the agent
// connects and is listed reachable with its version and phases, a request
// waiting for another cluster is counted, remove closes the agent's
// connection and refuses it, and the cluster leaves the list.
func clusterLifecycle(t *testing.T, env map[string]string, agentURL string, js jetstream.JetStream) {
	keys := env[keystoreEnv]
	r := scctl(t, env, "cluster", "add", "c2")
	require.Equal(t, ExitOK, r.code, r.stderr)
	secret := filepath.Join(keys, "c2-nats-secret.yaml")
	assert.Contains(t, r.stdout, "cluster c2 added: consumer agent-c2 on SC_REQUESTS, NATS user U")
	assert.Contains(t, r.stdout, "kubectl apply -n sc-system -f "+secret)
	assert.Contains(t, r.stdout, "--set cluster.id=c2 --set nats.url="+env["SCCTL_SERVER"]+
		" --set nats.credentialsSecret=sc-nats-credentials --set nats.credentialsFormat=creds")
	creds := secretCreds(t, secret)
	raw, err := os.ReadFile(creds)
	require.NoError(t, err)
	kp, err := jwt.ParseDecoratedUserNKey(raw)
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	assert.NotContains(t, r.stdout+r.stderr, string(seed), "no seed printed")

	again := scctl(t, env, "cluster", "add", "c2")
	assert.Equal(t, ExitFailed, again.code)
	assert.Contains(t, again.stderr, "cluster c2 already has credentials")

	agent := startBeatingAgent(t, agentURL, "c2", creds, map[string]int{"Succeeded": 3, "Pending": 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = js.Publish(ctx, protocol.RequestSubject("c1"), []byte(`{}`), jetstream.WithMsgID("waiting-1"))
	require.NoError(t, err)

	var views map[string]clusterView
	require.Eventually(t, func() bool {
		views = listJSON(t, env)
		// On a cluster the consumer's count follows the stream's ack a
		// moment later (its leader applies the stream's replica).
		return views["c2"].Reachable && views["c1"].WaitingRequests == 1
	}, 10*time.Second, 20*time.Millisecond, "c2 listed reachable, c1 with its one waiting request")
	c1, c2 := views["c1"], views["c2"]
	assert.True(t, c1.Consumer && c1.Issued && !c1.Reachable, "%+v", c1)
	assert.Nil(t, c1.LastHeartbeat, "c1's agent never beat")
	assert.Equal(t, uint64(1), c1.WaitingRequests)
	assert.True(t, c2.Consumer && c2.Issued, "%+v", c2)
	assert.Equal(t, "v9.9.9", c2.AgentVersion)
	assert.Equal(t, 4, c2.Connections)
	assert.Equal(t, map[string]int{"Succeeded": 3, "Pending": 1}, c2.Phases)
	require.NotNil(t, c2.LastHeartbeat)
	assert.WithinDuration(t, time.Now(), *c2.LastHeartbeat, 10*time.Second)
	stale := listJSON(t, env, "--heartbeat-interval", "1ns")
	assert.False(t, stale["c2"].Reachable, "older than three intervals: unreachable")

	table := scctl(t, env, "cluster", "list")
	require.Equal(t, ExitOK, table.code, table.stderr)
	lines := strings.Split(strings.TrimSpace(table.stdout), "\n")
	require.Len(t, lines, 3, table.stdout)
	assert.Regexp(t, `^CLUSTER\s+REACHABLE\s+LAST HEARTBEAT\s+AGE\s+VERSION\s+CONNECTIONS\s+PHASES\s+WAITING$`, lines[0])
	assert.Regexp(t, `^c1\s+no\s+-\s+-\s+-\s+0\s+-\s+1$`, lines[1])
	assert.Regexp(t, `^c2\s+yes\s+\S+Z\s+\d+s\s+v9\.9\.9\s+4\s+Pending=1,Succeeded=3\s+0$`, lines[2])

	rm := scctl(t, env, "cluster", "remove", "c2")
	require.Equal(t, ExitOK, rm.code, rm.stderr)
	assert.Contains(t, rm.stdout, "cluster c2 removed: user U")
	assert.Contains(t, rm.stdout, "consumer agent-c2 deleted, 0 waiting requests dropped")
	require.Eventually(t, func() bool { return !agent.IsConnected() }, 10*time.Second, 5*time.Millisecond,
		"the removed cluster's agent is disconnected; on %s, last error %v", agent.ConnectedUrl(), agent.LastError())
	for _, u := range strings.Split(agentURL, ",") {
		_, err := nats.Connect(u, nats.UserCredentials(creds), nats.NoReconnect())
		require.True(t, errors.Is(err, nats.ErrAuthorization), "refused by %s: %v", u, err)
	}
	assert.NoFileExists(t, secret)
	require.Eventually(t, func() bool {
		views = listJSON(t, env)
		_, listed := views["c2"]
		return !listed
	}, 10*time.Second, 20*time.Millisecond, "c2 no longer listed")
	assert.Contains(t, views, "c1")

	gone := scctl(t, env, "cluster", "remove", "c2")
	assert.Equal(t, ExitFailed, gone.code)
	assert.Contains(t, gone.stderr, "cluster c2 has no credentials in keystore")
}

// Issue 12 on one embedded server in jwt mode: clusters added and removed
// at runtime with scctl alone, the server never restarted.
func TestClusterAddListRemoveOnOneServer(t *testing.T) {
	dir := t.TempDir()
	srv := devservertest.Start(t, devserver.Options{StoreDir: dir, Clusters: []string{"c1"},
		Auth: devserver.AuthOptions{Mode: devserver.AuthJWT}})
	env := map[string]string{"SCCTL_SERVER": srv.ClientURL(), keystoreEnv: srv.KeystoreDir()}
	k, err := srv.Keystore()
	require.NoError(t, err)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserCredentials(k.AdminCredsFile()))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	clusterLifecycle(t, env, srv.ClientURL(), js)
}

// The same against a 3-node JetStream cluster sharing the keystore: scctl
// is given every node's URL, the agent dials the last node, and the
// revocation scctl pushes to whichever node it reached closes it there.
func TestClusterAddListRemoveOnAThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	keys := filepath.Join(t.TempDir(), "keys")
	c := natscluster.Start(t, 3, devserver.Options{Clusters: []string{"c1"},
		Auth: devserver.AuthOptions{Mode: devserver.AuthJWT, KeystoreDir: keys}})
	k, err := c.Node(0).Keystore()
	require.NoError(t, err)
	c.AdminAuth = nats.UserCredentials(k.AdminCredsFile())
	_, js := c.AdminConn()
	env := map[string]string{"SCCTL_SERVER": c.Node(0).ClientURL() + "," + c.Node(1).ClientURL(), keystoreEnv: keys}
	clusterLifecycle(t, env, c.Node(2).ClientURL(), js)
}

func TestClusterCommandUsage(t *testing.T) {
	keys := t.TempDir()
	cases := map[string]struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		"no keystore":        {nil, []string{"cluster", "add", "c1"}, ExitUsage, "--keystore is required (or set SCCTL_KEYSTORE)"},
		"bad id":             {map[string]string{keystoreEnv: keys}, []string{"cluster", "add", "C1.x"}, ExitUsage, `cluster "C1.x" must be lowercase`},
		"two ids":            {map[string]string{keystoreEnv: keys}, []string{"cluster", "remove", "a", "b"}, ExitUsage, "needs exactly one cluster id"},
		"not a keystore":     {map[string]string{keystoreEnv: keys}, []string{"cluster", "add", "c1"}, ExitFailed, "no operator.jwt"},
		"bad interval":       {nil, []string{"cluster", "list", "--heartbeat-interval", "0s"}, ExitUsage, "--heartbeat-interval: must be positive"},
		"no subcommand":      {nil, []string{"cluster"}, ExitUsage, "scctl cluster needs a subcommand"},
		"server unreachable": {nil, []string{"cluster", "list", "--server", "nats://127.0.0.1:1"}, ExitUnreachable, "nats://127.0.0.1:1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := scctl(t, tc.env, tc.args...)
			assert.Equal(t, tc.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tc.want)
		})
	}
}

// list needs no keystore: on a password-mode server it lists the clusters
// by their consumers, as the admin user.
func TestClusterListOnAPasswordServer(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"a", "b"}})
	admin := srv.Admin()
	env := map[string]string{"SCCTL_SERVER": srv.ClientURL(), "SCCTL_USER": admin.User, "SCCTL_PASSWORD": admin.Password}
	views := listJSON(t, env)
	require.Len(t, views, 2)
	for _, id := range []string{"a", "b"} {
		assert.True(t, views[id].Consumer, id)
		assert.False(t, views[id].Issued || views[id].Reachable, id)
	}
	add := scctl(t, env, "cluster", "add", "c")
	assert.Equal(t, ExitUsage, add.code, "add needs a keystore")
}

// At fleet size: a jwt-mode server started with 1,000 clusters takes a
// 1,001st at runtime (nats-server caps a stream at 1,000 consumers unless
// the account sets a limit: fleetauth.MaxConsumers), and list reads every
// cluster's last heartbeat in one pass.
func TestClusterAddAndListBeyondAThousandClusters(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 clusters")
	}
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%04d", i)
	}
	start := time.Now()
	srv := devservertest.Start(t, devserver.Options{Clusters: ids, Auth: devserver.AuthOptions{Mode: devserver.AuthJWT}})
	t.Logf("started with %d clusters (users issued, consumers created) in %s", len(ids), time.Since(start).Round(time.Millisecond))
	k, err := srv.Keystore()
	require.NoError(t, err)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserCredentials(k.AdminCredsFile()))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Heartbeats as each agent would send them (the admin may publish
	// anywhere; the agents' own path is tested above).
	for i, id := range ids {
		data, err := protocol.Encode(protocol.Heartbeat{Header: protocol.NewHeader(protocol.KindHeartbeat), Cluster: id,
			AgentVersion: "v1", Connections: i % 7, Phases: map[string]int{"Succeeded": i % 7}, Time: time.Now()})
		require.NoError(t, err)
		_, err = js.Publish(ctx, protocol.HeartbeatSubject(id), data)
		require.NoError(t, err)
	}
	env := map[string]string{"SCCTL_SERVER": srv.ClientURL(), keystoreEnv: srv.KeystoreDir()}
	add := scctl(t, env, "cluster", "add", "c1000")
	require.Equal(t, ExitOK, add.code, add.stderr)

	start = time.Now()
	views := listJSON(t, env)
	t.Logf("cluster list over %d clusters in %s", len(views), time.Since(start).Round(time.Millisecond))
	require.Len(t, views, 1001)
	for i, id := range ids {
		v := views[id]
		require.True(t, v.Reachable && v.Consumer && v.Issued, "%+v", v)
		require.Equal(t, i%7, v.Connections, id)
	}
	assert.True(t, views["c1000"].Consumer && !views["c1000"].Reachable)
}
