package cli

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func TestServerClusterFlagUsageErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"peer not a route URL": {[]string{"server", "--cluster-peers", "nats://127.0.0.1:6222"}, `"nats://127.0.0.1:6222": want nats-route://host:port`},
		"peer without port":    {[]string{"server", "--cluster-peers", "nats-route://127.0.0.1"}, `"nats-route://127.0.0.1": want nats-route://host:port`},
		"listen without port":  {[]string{"server", "--cluster-listen", "127.0.0.1"}, "--cluster-listen"},
		"replicas not number":  {[]string{"server", "--replicas", "three"}, `invalid argument "three" for "--replicas"`},
	} {
		t.Run(name, func(t *testing.T) {
			r := runApp(t, &fakePlane{}, nil, "", false, tc.args...)
			assert.Equal(t, ExitUsage, r.code, r.stderr)
			assert.Contains(t, r.stderr, tc.want)
		})
	}
}

// Three `scctl server` processes' worth of flags make one JetStream
// cluster with R3 streams, and scctl reaches it through a URL list that
// starts with a node that is not there.
func TestServerClusterFlagsFormACluster(t *testing.T) {
	routes, stores := make([]string, 3), make([]string, 3)
	for i, p := range loopbackPorts(t, 3) {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
		stores[i] = t.TempDir()
	}
	// What an operator does by copying <store-dir>/credentials to the peers.
	require.NoError(t, devserver.ShareCredentials(devserver.Options{StoreDir: stores[0], Clusters: []string{"c1"}}, stores[1:]...))

	creds := filepath.Join(t.TempDir(), "creds")
	ctx, cancel := context.WithCancel(context.Background())
	outs := make([]*devservertest.LogBuffer, 3)
	exited := make(chan int, 3)
	for i := range 3 {
		outs[i] = &devservertest.LogBuffer{}
		app := &App{Stdout: outs[i], Stderr: outs[i], Getenv: func(string) string { return "" }}
		args := []string{"server", "--listen", "127.0.0.1:0", "--cluster", "c1", "--store-dir", stores[i],
			"--cluster-name", "sc", "--server-name", fmt.Sprintf("n%d", i+1), "--cluster-listen", strings.TrimPrefix(routes[i], "nats-route://"),
			"--cluster-peers", strings.Join(routes, ","), "--replicas", "3"}
		if i == 0 {
			args = append(args, "--write-creds", creds)
		}
		go func() { exited <- app.Run(ctx, args) }()
	}
	t.Cleanup(func() {
		cancel()
		for range 3 {
			<-exited
		}
	})
	urls := make([]string, 3)
	for i, out := range outs {
		require.Eventually(t, func() bool { return strings.Contains(out.String(), "Stop with") }, 60*time.Second, 20*time.Millisecond, out.String())
		m := listeningOn.FindStringSubmatch(out.String())
		require.NotNil(t, m, out.String())
		urls[i] = m[1]
	}

	env := readEnvFile(t, filepath.Join(creds, "scctl.env"))
	nc, err := nats.Connect(strings.Join(urls, ","), nats.UserInfo(env["SCCTL_USER"], env["SCCTL_PASSWORD"]))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	for _, name := range []string{protocol.RequestStream, protocol.StatusStream} {
		s, err := js.Stream(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, 3, s.CachedInfo().Config.Replicas, name)
		assert.Equal(t, "sc", s.CachedInfo().Cluster.Name)
	}

	// A dead first URL does not stop scctl: it takes the next one.
	dead := fmt.Sprintf("nats://127.0.0.1:%d", loopbackPorts(t, 1)[0])
	env["SCCTL_SERVER"], env["SCCTL_CLUSTER"] = dead+","+strings.Join(urls, ","), "c1"
	var qout, qerr devservertest.LogBuffer
	client := &App{Stdout: &qout, Stderr: &qerr, Getenv: func(k string) string { return env[k] }}
	assert.Equal(t, ExitUnreachable, client.Run(context.Background(), []string{"connection", "list"}), qerr.String())
	assert.Contains(t, qerr.String(), `the agent of cluster "c1" is not reachable`, "the server answered; only the agent is missing")
}

var listeningOn = regexp.MustCompile(`listening on\s+(nats://\S+)`)

// loopbackPorts finds n ports free now: route ports are fixed, every node
// names its peers' before any starts.
func loopbackPorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ports[i] = l.Addr().(*net.TCPAddr).Port
		defer l.Close()
	}
	return ports
}
