package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleet"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// replicas of the streams (and so of every agent's consumer).
const replicas = 3

// credentials are a NATS user and password.
type credentials = devserver.Credentials

// userFile is every user of the bare nodes (-servers self).

type userFile struct {
	Admin    credentials            `json:"admin"`
	Clusters map[string]credentials `json:"clusters"`
}

// identity is how one client authenticates: a user and password, or a
// .creds file (jwt mode).
type identity struct {
	User, Password, CredsFile string
}

func (i identity) natsOption() nats.Option {
	if i.CredsFile != "" {
		return nats.UserCredentials(i.CredsFile)
	}
	return nats.UserInfo(i.User, i.Password)
}

// controlPlane is the 3-node cluster and the identities it accepts.
type controlPlane struct {
	mode   string
	auth   string
	nodes  []*node
	admin  identity
	agents map[string]identity
	log    zerolog.Logger
	added  time.Duration // clusters added while the servers ran (scctl + jwt)
}

// addAtRuntime waits until every node has reported ready (streams only:
// the keystore lists no cluster yet), then adds the clusters while the
// servers run, as `scctl cluster add` does: the durable consumer first,
// then the user. cp.added is how long that took.
func (cp *controlPlane) addAtRuntime(ctx context.Context, keystore, credsDir string, clusters []string) error {
	if err := retry(ctx, 5*time.Minute, func(context.Context) error {
		for _, n := range cp.nodes {
			if n.readyAfter() == 0 {
				return fmt.Errorf("%s has not reported ready", n.name)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	k, err := fleetauth.Open(keystore, devserver.ClusterPermissions)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(credsDir, 0o700); err != nil {
		return err
	}
	nc, js, err := cp.adminConn("fleetbench cluster add")
	if err != nil {
		return err
	}
	defer nc.Close()
	start := time.Now()
	var mu sync.Mutex
	err = forEach(ctx, clusters, 16, func(ctx context.Context, cl string) error {
		// fleet.Add issues only after the consumer exists, so a retry
		// after a lost consumer call is never refused as issued.
		var creds []byte
		if err := retry(ctx, 60*time.Second, func(ctx context.Context) error {
			var err error
			creds, err = fleet.Add(ctx, js, k, cl, 0)
			return err
		}); err != nil {
			return fmt.Errorf("add %s: %w", cl, err)
		}
		path := filepath.Join(credsDir, cl+".creds")
		if err := os.WriteFile(path, creds, 0o600); err != nil {
			return err
		}
		mu.Lock()
		cp.agents[cl] = identity{User: devserver.UserName(cl), CredsFile: path}
		mu.Unlock()
		return nil
	})
	cp.added = time.Since(start)
	return err
}

// issue creates the shared keystore and a user for every cluster, each
// .creds written to credsDir.
func (cp *controlPlane) issue(keystore, credsDir string, clusters []string) error {
	k, err := fleetauth.Open(keystore, devserver.ClusterPermissions)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(credsDir, 0o700); err != nil {
		return err
	}
	cp.admin = identity{User: devserver.AdminUser, CredsFile: k.AdminCredsFile()}
	for _, cl := range clusters {
		creds, err := k.Issue(cl)
		if err != nil {
			return fmt.Errorf("issue %s: %w", cl, err)
		}
		path := filepath.Join(credsDir, cl+".creds")
		if err := os.WriteFile(path, creds, 0o600); err != nil {
			return err
		}
		cp.agents[cl] = identity{User: devserver.UserName(cl), CredsFile: path}
	}
	return nil
}

// urls is every node's client URL, as an agent's --nats-url lists them.
func (cp *controlPlane) urls() string {
	out := make([]string, len(cp.nodes))
	for i, n := range cp.nodes {
		out[i] = n.url()
	}
	return strings.Join(out, ",")
}

func (cp *controlPlane) node(name string) *node {
	for _, n := range cp.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (cp *controlPlane) stop() {
	var wg sync.WaitGroup
	for _, n := range cp.nodes {
		wg.Go(func() { n.signal(syscall.SIGTERM) })
	}
	wg.Wait()
}

// startControlPlane starts three server processes on loopback that form
// one JetStream cluster, and returns once the streams (R3) and every
// cluster's consumer exist.
func startControlPlane(ctx context.Context, c config, work string, clusters []string, log zerolog.Logger) (*controlPlane, error) {
	ports, err := loopbackPorts(c.BasePort, 2*replicas)
	if err != nil {
		return nil, err
	}
	cp := &controlPlane{mode: c.Servers, auth: c.Auth, log: log, agents: map[string]identity{}}
	stores := make([]string, replicas)
	for i := range stores {
		stores[i] = filepath.Join(work, fmt.Sprintf("n%d", i+1))
	}
	usersPath := filepath.Join(work, "users.json")
	keystore := filepath.Join(work, "keystore")
	switch {
	case c.Auth == "jwt" && c.Servers == "scctl":
		// One keystore for the three nodes (--keystore), created here
		// so that they do not race to create it; the clusters are added
		// once the nodes run (addAtRuntime).
		k, err := fleetauth.Open(keystore, devserver.ClusterPermissions)
		if err != nil {
			return nil, err
		}
		cp.admin = identity{User: devserver.AdminUser, CredsFile: k.AdminCredsFile()}
	case c.Auth == "jwt":
		// Bare nodes provision nothing: every cluster is issued first and
		// the bench creates the consumers (provision).
		if err := cp.issue(keystore, filepath.Join(work, "creds"), clusters); err != nil {
			return nil, err
		}
	case c.Servers == "scctl":
		// The nodes share one set of users, as devserver documents for a
		// cluster; each agent's password is read back from its Secret
		// manifest, the file an operator hands to the chart.
		pw := randomSecret()
		cp.admin = identity{User: devserver.AdminUser, Password: pw}
		if err := devserver.ShareCredentials(devserver.Options{StoreDir: stores[0], Clusters: clusters,
			AdminPassword: pw}, stores[1:]...); err != nil {
			return nil, err
		}
		for _, cl := range clusters {
			cred, err := readSecretManifest(devserver.SecretManifestPath(stores[0], cl))
			if err != nil {
				return nil, err
			}
			cp.agents[cl] = identity{User: cred.User, Password: cred.Password}
		}
	default:
		users := userFile{Admin: credentials{User: devserver.AdminUser, Password: randomSecret()}, Clusters: map[string]credentials{}}
		cp.admin = identity{User: users.Admin.User, Password: users.Admin.Password}
		for _, cl := range clusters {
			users.Clusters[cl] = credentials{User: devserver.UserName(cl), Password: randomSecret()}
			cp.agents[cl] = identity{User: users.Clusters[cl].User, Password: users.Clusters[cl].Password}
		}
		if err := writeJSON(usersPath, users); err != nil {
			return nil, err
		}
	}
	bin, err := serverBinary(ctx, c, work)
	if err != nil {
		return nil, err
	}
	routes := make([]string, replicas)
	for i := range replicas {
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(ports[replicas+i])
	}
	for i := range replicas {
		n := &node{name: fmt.Sprintf("n%d", i+1), port: ports[i], routePort: ports[replicas+i], bin: bin,
			store: stores[i], logPath: filepath.Join(work, fmt.Sprintf("n%d.log", i+1))}
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, r)
			}
		}
		listen := "127.0.0.1:" + strconv.Itoa(n.port)
		routeListen := "127.0.0.1:" + strconv.Itoa(n.routePort)
		switch c.Servers {
		case "scctl":
			n.args = []string{"server", "--listen", listen, "--store-dir", n.store,
				"--cluster-name", "sc-fleet", "--server-name", n.name, "--cluster-listen", routeListen,
				"--cluster-peers", strings.Join(peers, ","), "--replicas", strconv.Itoa(replicas)}
			if c.Auth == "jwt" {
				n.args = append(n.args, "--auth", "jwt", "--keystore", keystore)
			} else {
				for _, cl := range clusters {
					n.args = append(n.args, "--cluster", cl)
				}
			}
		case "self":
			n.args = []string{nodeCommand, "-name", n.name, "-listen", listen, "-cluster-listen", routeListen,
				"-peers", strings.Join(peers, ","), "-store", n.store}
			if c.Auth == "jwt" {
				n.args = append(n.args, "-keystore", keystore)
			} else {
				n.args = append(n.args, "-users", usersPath)
			}
		}
		cp.nodes = append(cp.nodes, n)
	}
	for _, n := range cp.nodes {
		if err := n.start(); err != nil {
			cp.stop()
			return nil, err
		}
	}
	if c.Auth == "jwt" && c.Servers == "scctl" {
		if err := cp.addAtRuntime(ctx, keystore, filepath.Join(work, "creds"), clusters); err != nil {
			cp.stop()
			return nil, err
		}
	}
	if err := cp.provision(ctx, clusters); err != nil {
		cp.stop()
		return nil, err
	}
	return cp, nil
}

// provision waits for the cluster to elect a JetStream meta leader and for
// the streams and consumers: scctl server creates them itself (each node
// runs provision); bare nodes get them from the bench, as an operator's
// tooling would.
func (cp *controlPlane) provision(ctx context.Context, clusters []string) error {
	nc, js, err := cp.adminConn("fleetbench provision")
	if err != nil {
		return err
	}
	defer nc.Close()
	if cp.mode == "self" {
		streams := natsbus.WithReplicas(replicas, natsbus.RequestStreamConfig(), natsbus.StatusStreamConfig())
		if err := retry(ctx, 120*time.Second, func(ctx context.Context) error {
			return natsbus.EnsureStreams(ctx, js, streams...)
		}); err != nil {
			return fmt.Errorf("create streams: %w", err)
		}
		if err := forEach(ctx, clusters, 16, func(ctx context.Context, cl string) error {
			return retry(ctx, 60*time.Second, func(ctx context.Context) error {
				_, err := js.CreateOrUpdateConsumer(ctx, protocol.RequestStream, natsbus.ConsumerConfig(cl, 0))
				return err
			})
		}); err != nil {
			return fmt.Errorf("create consumers: %w", err)
		}
	}
	// Every node must see the streams at R3 and the consumers: scctl
	// server's provision runs on each node, so wait for the count.
	return retry(ctx, 10*time.Minute, func(ctx context.Context) error {
		info, err := js.AccountInfo(ctx)
		if err != nil {
			return err
		}
		if info.Streams < 2 || info.Consumers < len(clusters) {
			return fmt.Errorf("%d streams and %d consumers so far", info.Streams, info.Consumers)
		}
		s, err := js.Stream(ctx, protocol.RequestStream)
		if err != nil {
			return err
		}
		if ci := s.CachedInfo().Cluster; ci == nil || ci.Leader == "" || s.CachedInfo().Config.Replicas != replicas {
			return errors.New("request stream has no leader or is not R3 yet")
		}
		return nil
	})
}

// adminConn connects as the control plane's admin, to every node's URL,
// reconnecting forever: a node kill must not end the bench's connection.
func (cp *controlPlane) adminConn(name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(cp.urls(), nats.Name(name), cp.admin.natsOption(),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		return nil, nil, fmt.Errorf("admin connection: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// streamLeader is the node leading stream name.
func streamLeader(ctx context.Context, js jetstream.JetStream, name string) (string, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return "", err
	}
	if ci := s.CachedInfo().Cluster; ci != nil && ci.Leader != "" {
		return ci.Leader, nil
	}
	return "", fmt.Errorf("stream %s has no leader", name)
}

// replicasCurrent reports whether every replica of stream name is current.
func replicasCurrent(ctx context.Context, js jetstream.JetStream, name string) bool {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return false
	}
	ci := s.CachedInfo().Cluster
	if ci == nil || ci.Leader == "" || len(ci.Replicas) != replicas-1 {
		return false
	}
	for _, r := range ci.Replicas {
		if !r.Current || r.Offline {
			return false
		}
	}
	return true
}
