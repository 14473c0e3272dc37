package devserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
)

// ErrClusterOptions: the JetStream cluster settings are incomplete or
// contradict each other.
var ErrClusterOptions = errors.New("devserver cluster")

// ClusterOptions joins the server to a JetStream cluster. The zero value
// is a single server.
type ClusterOptions struct {
	// Name is the cluster's name, the same on every node; empty: no cluster.
	Name string
	// ServerName names this node, unique in the cluster and the same
	// across restarts: JetStream's RAFT groups know their peers by it.
	ServerName string
	// Listen is host:port for routes from the other nodes. The port is
	// fixed (not 0): the peers' Routes name it.
	Listen string
	// Routes are the other nodes' route URLs (nats-route://host:port).
	// Listing this node's own address too is harmless, so every node can
	// be given the same list.
	Routes []string
	// Replicas of the request and status streams (and, inherited, of the
	// consumers). 0: 1 on a single server, 3 in a cluster.
	Replicas int
	// LeafListen is host:port (a fixed port) where edge clusters' leaf
	// nodes dial in, with or without a cluster. A leaf node authenticates
	// as its cluster's user, so everything behind it is confined to that
	// cluster's subjects; the hub never dials out to an edge.
	LeafListen string
}

// Enabled says whether the server joins a cluster.
func (c ClusterOptions) Enabled() bool { return c.Name != "" }

// replicas is the stream replica count these options ask for.
func (c ClusterOptions) replicas() int {
	switch {
	case c.Replicas > 0:
		return c.Replicas
	case c.Enabled():
		return 3
	default:
		return 1
	}
}

// Validate reports the first contradiction; callers (the CLI) may check
// before Start does.
func (c ClusterOptions) Validate() error {
	if c.LeafListen != "" {
		if _, _, err := fixedPort("leaf node listener", c.LeafListen); err != nil {
			return err
		}
	}
	if !c.Enabled() {
		if c.ServerName != "" || c.Listen != "" || len(c.Routes) > 0 || c.Replicas > 1 {
			return fmt.Errorf("%w: a server name, route listener, peers or replicas above 1 need a cluster name", ErrClusterOptions)
		}
		return nil
	}
	if c.ServerName == "" {
		return fmt.Errorf("%w: cluster %s: every node needs a server name, unique and kept across restarts", ErrClusterOptions, c.Name)
	}
	if _, err := c.listen(); err != nil {
		return err
	}
	if _, err := c.routes(); err != nil {
		return err
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("%w: replicas %d: JetStream takes 1 to 5", ErrClusterOptions, c.Replicas)
	}
	return nil
}

func (c ClusterOptions) listen() (server.ClusterOpts, error) {
	host, port, err := fixedPort("route listener", c.Listen)
	if err != nil {
		return server.ClusterOpts{}, err
	}
	return server.ClusterOpts{Name: c.Name, Host: host, Port: port}, nil
}

// fixedPort splits a listener's host:port whose port others dial, so it
// cannot be left for the server to pick.
func fixedPort(what, hostPort string) (string, int, error) {
	host, portText, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %s %q: %w", ErrClusterOptions, what, hostPort, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("%w: %s %q: the port must be fixed (1 to 65535): others dial it", ErrClusterOptions, what, hostPort)
	}
	return host, port, nil
}

func (c ClusterOptions) routes() ([]*url.URL, error) {
	out := make([]*url.URL, 0, len(c.Routes))
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "nats-route" || u.Port() == "" {
			return nil, fmt.Errorf("%w: peer %q is not a nats-route://host:port URL", ErrClusterOptions, r)
		}
		out = append(out, u)
	}
	return out, nil
}

// configureCluster sets the server's cluster (routes) options in o.
func (s *Server) configureCluster(o *server.Options) error {
	c := s.opts.Cluster
	if err := c.Validate(); err != nil {
		return err
	}
	if c.LeafListen != "" && s.opts.Auth.JWT() {
		// A leaf's JWT user would need LeafPermissions and the account's
		// JetStream default domain keyed by its public key; neither is
		// issued yet, and a half-working edge is worse than a refusal.
		return fmt.Errorf("%w: a leaf node listener needs password auth for now (docs/controlplane.md)", ErrClusterOptions)
	}
	if c.LeafListen != "" {
		host, port, _ := fixedPort("leaf node listener", c.LeafListen) // validated above
		o.LeafNode.Host, o.LeafNode.Port = host, port
		// A server denies JetStream API traffic across leaf connections
		// unless the account's JetStream is declared the default (empty)
		// domain on both ends: then an edge without JetStream reaches the
		// hub's streams under the plain $JS.API subjects the cluster
		// users' permissions name.
		o.JsAccDefaultDomain = map[string]string{server.DEFAULT_GLOBAL_ACCOUNT: ""}
		// Leaf nodes authenticate as client users (not LeafNode.Users,
		// which nats-server binds to an account without permissions), so
		// the hub applies LeafPermissions to everything behind an edge.
		if len(o.Users) > 0 {
			o.Users = append(o.Users, s.leafUsers()...)
		}
	}
	if !c.Enabled() {
		return nil
	}
	cl, err := c.listen()
	if err != nil {
		return err
	}
	routes, err := c.routes()
	if err != nil {
		return err
	}
	o.ServerName = c.ServerName
	o.Cluster = cl
	o.Routes = routes
	return nil
}

// LeafReplySubjects is what a leaf node's user may publish beyond
// ClusterPermissions: the control plane's reply inboxes. A hub tells a
// leaf node only about subscriptions its user may publish to, and the
// one-reply-per-request grant (allow_responses) is not a subscription, so
// without this the edge never learns where a query's answer goes and
// drops it. The cost: an edge may publish into any inbox whose random
// name it knows; it still cannot subscribe to one, nor reach another
// cluster's subjects or consumer.
const LeafReplySubjects = "_INBOX.>"

// LeafPermissions is what the leaf node of cluster's edge may do on the
// hub: ClusterPermissions and LeafReplySubjects.
func LeafPermissions(cluster string) *server.Permissions {
	p := ClusterPermissions(cluster)
	p.Publish.Allow = append(p.Publish.Allow, LeafReplySubjects)
	return p
}

// LeafUserName is the NATS user a cluster's leaf node dials the hub as;
// its password is the cluster's (agent) password.
func LeafUserName(cluster string) string { return "leaf-" + cluster }

// leafUsers are the clusters' leaf node users, with LeafPermissions.
func (s *Server) leafUsers() []*server.User {
	var out []*server.User
	for c, cred := range s.users.Clusters {
		out = append(out, &server.User{Username: LeafUserName(c), Password: cred.Password, Permissions: LeafPermissions(c),
			AllowedConnectionTypes: onlyConnectionType(jwt.ConnectionTypeLeafnode)})
	}
	return out
}

// streamConfigs are the streams provision creates.
func (s *Server) streamConfigs() []jetstream.StreamConfig {
	cfgs := s.opts.Streams
	if len(cfgs) == 0 {
		cfgs = []jetstream.StreamConfig{natsbus.RequestStreamConfig(), natsbus.StatusStreamConfig()}
	}
	return natsbus.WithReplicas(s.opts.Cluster.replicas(), cfgs...)
}

// provisionRetryMax caps the wait between provisioning attempts of a
// clustered node; provisionCallTimeout bounds each API call of one.
const (
	provisionRetryMax    = 2 * time.Second
	provisionCallTimeout = 2 * time.Second
)

// provisionClustered runs provision's steps (one API call each) in order
// until all have succeeded or ctx ends. A fresh cluster has no JetStream
// meta leader until a quorum of nodes has met, and then, for a moment,
// fewer known peers than an R3 stream needs: each node's Start waits
// through both, so that a node reports ready only when the streams exist
// at the replica count asked for. A step done is not done again: with a
// thousand clusters' consumers, an attempt that started over would never
// finish within any bound and would keep the meta leader busy with the
// same updates. Each call is bounded instead, since one may hang while the
// meta leader changes. A single server needs none of this and fails at
// once.
func (s *Server) provisionClustered(ctx context.Context, ns *server.Server, steps []func(context.Context) error) error {
	if !s.opts.Cluster.Enabled() {
		for _, step := range steps {
			if err := step(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	backoff := natsbus.Backoff(50*time.Millisecond, provisionRetryMax)
	for attempt := 1; ; attempt++ {
		err := errNoMetaLeader
		for ns.JetStreamIsCurrent() && len(steps) > 0 {
			cctx, cancel := context.WithTimeout(ctx, provisionCallTimeout)
			err = steps[0](cctx)
			cancel()
			if err != nil {
				break
			}
			steps = steps[1:]
		}
		if len(steps) == 0 {
			return nil
		}
		if attempt%20 == 0 {
			s.opts.Logger.Warn().Err(err).Str("server", s.opts.Cluster.ServerName).Int("stepsLeft", len(steps)).
				Msg("waiting for the JetStream cluster to create the streams and consumers")
		}
		t := time.NewTimer(backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("JetStream cluster %s not ready: %w (last: %w)", s.opts.Cluster.Name, ctx.Err(), err)
		case <-t.C:
		}
	}
}

var errNoMetaLeader = errors.New("no JetStream meta leader yet")

// ServerName is this node's name in its cluster ("sc-devserver" alone).
func (s *Server) ServerName() string {
	if s.opts.Cluster.Enabled() {
		return s.opts.Cluster.ServerName
	}
	return defaultServerName
}

const defaultServerName = "sc-devserver"

// ShareCredentials gives every node of a cluster the same users: it
// creates o's credentials in o.StoreDir as Start would (keeping any that
// exist) and copies that credentials directory into each peer's store
// directory, files owner-only. Every node must accept the password an
// agent was given, whichever node the agent reaches. Run it before the
// peers start (copying <store-dir>/credentials by hand does the same).
func ShareCredentials(o Options, peerStoreDirs ...string) error {
	if o.StoreDir == "" {
		return errors.New("devserver: StoreDir is required")
	}
	if _, err := loadOrCreateUsers(o.StoreDir, o.Clusters, o.AdminPassword); err != nil {
		return fmt.Errorf("devserver: %w", err)
	}
	src := credentialsDir(o.StoreDir)
	for _, peer := range peerStoreDirs {
		if err := copyTree(src, credentialsDir(peer)); err != nil {
			return fmt.Errorf("devserver: share credentials with %s: %w", peer, err)
		}
	}
	return nil
}

// copyTree copies the regular files under src to dst with directories
// 0700 and files 0600, whatever the umask: these files hold secrets.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		case !d.Type().IsRegular():
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return writeFile(target, b)
	})
}
