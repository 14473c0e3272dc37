// Package natscluster starts JetStream clusters of development control
// planes for tests: n devservers in one process, routed to each other on
// loopback ports, sharing one set of credentials, with replicated streams.
// A test can take a node down and bring it back, and ask which node leads a
// stream or a consumer, to prove what survives the loss of that node.
package natscluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

// Name is the cluster name nodes get when the template names none.
const Name = "sc-test"

// Cluster is a running JetStream cluster of devservers.
type Cluster struct {
	t     testing.TB
	nodes []*devserver.Server
	// AdminAuth authenticates the helper's own admin connections; the
	// admin user and password unless a test (jwt mode) sets another.
	AdminAuth nats.Option

	mu   sync.Mutex
	down map[int]bool
}

// Start runs n nodes (3 for a quorum that survives one loss) and returns
// once every node has provisioned the streams, at o.Cluster.Replicas or
// min(n, 3). o is the template of every node: Clusters, AckWait, Streams,
// Auth, Logger and an AdminPassword apply to all; StoreDir, Port and the
// cluster's ServerName, Listen and Routes are chosen here. Shut down when
// the test ends.
func Start(t testing.TB, n int, o devserver.Options) *Cluster {
	t.Helper()
	require.Positive(t, n)
	name := o.Cluster.Name
	if name == "" {
		name = Name
	}
	replicas := o.Cluster.Replicas
	if replicas == 0 {
		replicas = min(n, 3)
	}
	ports := FreePorts(t, n)
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(p)
	}
	opts := make([]devserver.Options, n)
	dirs := make([]string, n)
	for i := range n {
		oi := o
		oi.Host, oi.Port, oi.StoreDir = "127.0.0.1", 0, t.TempDir()
		oi.Cluster = devserver.ClusterOptions{
			Name: name, ServerName: fmt.Sprintf("n%d", i+1), Listen: "127.0.0.1:" + strconv.Itoa(ports[i]),
			Routes: routes, Replicas: replicas,
		}
		opts[i], dirs[i] = oi, oi.StoreDir
	}
	require.NoError(t, devserver.ShareCredentials(opts[0], dirs[1:]...))

	// Each node's Start returns only when the cluster has a quorum, so
	// they start together.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := &Cluster{t: t, nodes: make([]*devserver.Server, n), down: map[int]bool{}}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { c.nodes[i], errs[i] = devserver.Start(ctx, opts[i]) })
	}
	wg.Wait()
	t.Cleanup(c.shutdown)
	require.NoError(t, errors.Join(errs...), "start a %d-node JetStream cluster", n)
	admin := c.nodes[0].Admin()
	c.AdminAuth = nats.UserInfo(admin.User, admin.Password)
	return c
}

// FreePorts finds n loopback ports free now. Route (and leaf node) ports
// must be known before any node starts (every node lists its peers), so
// unlike the client port they cannot be left to the server to pick.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	ls := make([]net.Listener, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ls[i], ports[i] = l, l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		require.NoError(t, l.Close())
	}
	return ports
}

func (c *Cluster) shutdown() {
	for _, s := range c.nodes {
		if s != nil {
			s.Shutdown()
		}
	}
}

// Len is the number of nodes, up or down.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node is node i (0-based).
func (c *Cluster) Node(i int) *devserver.Server { return c.nodes[i] }

// URLs is every node's client URL, comma-separated, as an agent's
// --nats-url or scctl's --server takes them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// Admin is the control plane's credentials, the same on every node.
func (c *Cluster) Admin() devserver.Credentials { return c.nodes[0].Admin() }

// Credentials is cluster's agent credentials, the same on every node.
func (c *Cluster) Credentials(cluster string) (devserver.Credentials, bool) {
	return c.nodes[0].Cluster(cluster)
}

// IndexOf is the index of the node named serverName (a nats.Conn's
// ConnectedServerName, a stream's leader), or -1.
func (c *Cluster) IndexOf(serverName string) int {
	for i, s := range c.nodes {
		if s.ServerName() == serverName {
			return i
		}
	}
	return -1
}

// Stop shuts node i down, as a node loss: its peers elect new leaders for
// what it led, and its clients reconnect elsewhere.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	c.down[i] = true
	c.mu.Unlock()
	c.nodes[i].Shutdown()
}

// Restart brings node i back on its ports and store; it returns once the
// node has provisioned again, which needs a quorum of the cluster.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(c.t, c.nodes[i].Restart(ctx), "restart node %d", i)
	c.mu.Lock()
	delete(c.down, i)
	c.mu.Unlock()
}

// AdminConn is a new admin connection to the nodes that are up, closed
// when the test ends.
func (c *Cluster) AdminConn() (*nats.Conn, jetstream.JetStream) {
	c.t.Helper()
	c.mu.Lock()
	var urls []string
	for i, s := range c.nodes {
		if !c.down[i] {
			urls = append(urls, s.ClientURL())
		}
	}
	c.mu.Unlock()
	nc, err := nats.Connect(strings.Join(urls, ","), c.AdminAuth, nats.Name("natscluster-admin"))
	require.NoError(c.t, err)
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(c.t, err)
	return nc, js
}

// StreamLeader is the index of the node leading stream, once the stream
// has a leader and every replica that is up is current, polled until
// timeout.
func (c *Cluster) StreamLeader(stream string, timeout time.Duration) int {
	c.t.Helper()
	_, js := c.AdminConn()
	leader := -1
	require.Eventually(c.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		info := s.CachedInfo()
		leader = c.clusterLeader(info.Cluster)
		return leader >= 0
	}, timeout, 20*time.Millisecond, "stream %s has a leader and current replicas", stream)
	return leader
}

// ConsumerLeader is the index of the node leading stream's consumer,
// polled like StreamLeader.
func (c *Cluster) ConsumerLeader(stream, consumer string, timeout time.Duration) int {
	c.t.Helper()
	_, js := c.AdminConn()
	leader := -1
	require.Eventually(c.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cons, err := js.Consumer(ctx, stream, consumer)
		if err != nil {
			return false
		}
		leader = c.clusterLeader(cons.CachedInfo().Cluster)
		return leader >= 0
	}, timeout, 20*time.Millisecond, "consumer %s/%s has a leader and current replicas", stream, consumer)
	return leader
}

// clusterLeader is the leader's index when every replica on a node that
// is up is current, else -1.
func (c *Cluster) clusterLeader(ci *jetstream.ClusterInfo) int {
	if ci == nil || ci.Leader == "" {
		return -1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range ci.Replicas {
		if i := c.IndexOf(r.Name); i >= 0 && !c.down[i] && (!r.Current || r.Offline) {
			return -1
		}
	}
	return c.IndexOf(ci.Leader)
}
