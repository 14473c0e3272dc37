package devserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// ErrNotReady: the embedded server did not accept connections in time.
var ErrNotReady = errors.New("NATS server not ready")

// Options configures the development control plane.
type Options struct {
	// Host defaults to 127.0.0.1; Port 0 picks a free port (kept across Restart).
	Host string
	Port int
	// StoreDir holds JetStream data and the generated credentials; a
	// restart on the same StoreDir keeps unacked requests and passwords.
	StoreDir string
	// Clusters get a confined user and a durable consumer each.
	Clusters []string
	// AdminPassword fixes the admin password; empty generates one (once).
	AdminPassword string
	// AckWait of the clusters' consumers; default natsbus.DefaultAckWait.
	AckWait time.Duration
	// ReadyTimeout bounds startup; default 10s.
	ReadyTimeout time.Duration
	// TLS makes the server require TLS (and, with ClientCAFile, a client
	// certificate signed by that CA).
	TLS TLSOptions
	// Streams replaces natsbus' request and status stream definitions
	// (tests use smaller limits); empty: natsbus' own.
	Streams []jetstream.StreamConfig
	// Auth chooses how clients authenticate (auth.go).
	Auth AuthOptions
	// Cluster joins this server to a JetStream cluster of peers (cluster.go).
	Cluster ClusterOptions
	Logger  zerolog.Logger
}

// TLSOptions are the server's certificate and key (PEM files) and,
// optionally, the CA bundle client certificates must chain to.
type TLSOptions struct {
	CertFile, KeyFile string
	ClientCAFile      string
}

// Enabled says whether the server requires TLS.
func (t TLSOptions) Enabled() bool { return t.CertFile != "" }

// ErrTLSOptions: the TLS files are incomplete or unusable.
var ErrTLSOptions = errors.New("devserver TLS")

func (t TLSOptions) validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("%w: a server certificate needs both a certificate file and a key file (certificate %q, key %q)",
			ErrTLSOptions, t.CertFile, t.KeyFile)
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		return fmt.Errorf("%w: verifying client certificates (CA %s) needs a server certificate and key", ErrTLSOptions, t.ClientCAFile)
	}
	return nil
}

// serverConfig loads the files; nats-server's loader reports a missing
// file or a key that does not match by name, never the key itself.
func (t TLSOptions) serverConfig() (*tls.Config, error) {
	cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: t.CertFile, KeyFile: t.KeyFile, CaFile: t.ClientCAFile, Verify: t.ClientCAFile != "",
		MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: certificate %s, key %s, client CA %q: %w", ErrTLSOptions, t.CertFile, t.KeyFile, t.ClientCAFile, err)
	}
	return cfg, nil
}

// Server is a running development control plane.
type Server struct {
	mu    sync.Mutex
	opts  Options
	ns    *server.Server
	users users
}

// Start runs the server, creates the streams and the per-cluster consumers.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("devserver: StoreDir is required")
	}
	for _, c := range o.Clusters {
		if err := protocol.ValidateCluster(c); err != nil {
			return nil, fmt.Errorf("devserver: %w", err)
		}
	}
	if err := o.TLS.validate(); err != nil {
		return nil, err
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	u, err := loadUsers(o) // auth.go: none in jwt mode
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	s := &Server{opts: o, users: u}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	port := s.opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	nsOpts := &server.Options{
		ServerName: defaultServerName,
		Host:       s.opts.Host,
		Port:       port,
		JetStream:  true,
		StoreDir:   s.opts.StoreDir,
		NoSigs:     true,
		MaxPayload: 1 << 20,
	}
	if err := s.configureAuth(nsOpts); err != nil {
		return err
	}
	if err := s.configureCluster(nsOpts); err != nil {
		return err
	}
	if s.opts.TLS.Enabled() {
		tc, err := s.opts.TLS.serverConfig()
		if err != nil {
			return err
		}
		nsOpts.TLS, nsOpts.TLSConfig, nsOpts.TLSVerify = true, tc, s.opts.TLS.ClientCAFile != ""
	}
	ns, err := server.NewServer(nsOpts)
	if err != nil {
		return fmt.Errorf("devserver: configure NATS: %w", err)
	}
	ns.SetLoggerV2(serverLogger{s.opts.Logger}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(s.opts.ReadyTimeout) {
		ns.Shutdown()
		return fmt.Errorf("devserver: after %s: %w", s.opts.ReadyTimeout, ErrNotReady)
	}
	// Pin the port so that Restart comes back where clients reconnect to.
	if tcp, ok := ns.Addr().(*net.TCPAddr); ok {
		s.opts.Port = tcp.Port
	}
	s.mu.Lock()
	s.ns = ns
	s.mu.Unlock()
	if err := s.provision(ctx, ns); err != nil {
		ns.Shutdown()
		return fmt.Errorf("devserver: %w", err)
	}
	s.opts.Logger.Info().Str("url", s.ClientURL()).Strs("clusters", s.opts.Clusters).Msg("development control plane ready")
	return nil
}

// provision creates (or updates) the streams and every cluster's consumer.
func (s *Server) provision(ctx context.Context, ns *server.Server) error {
	nc, err := s.connectAdmin(ns)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	var steps []func(context.Context) error
	for _, cfg := range s.streamConfigs() {
		steps = append(steps, func(ctx context.Context) error { return natsbus.EnsureStreams(ctx, js, cfg) })
	}
	// One listing tells which consumers are as wanted already: a restart
	// of a node serving a thousand clusters then writes none of them.
	current := map[string]jetstream.ConsumerConfig{}
	steps = append(steps, func(ctx context.Context) error {
		clear(current)
		st, err := js.Stream(ctx, protocol.RequestStream)
		if err != nil {
			return fmt.Errorf("stream %s: %w", protocol.RequestStream, err)
		}
		list := st.ListConsumers(ctx)
		for info := range list.Info() {
			current[info.Name] = info.Config
		}
		if err := list.Err(); err != nil {
			return fmt.Errorf("list consumers of %s: %w", protocol.RequestStream, err)
		}
		return nil
	})
	for c := range s.users.Clusters {
		cfg := natsbus.ConsumerConfig(c, s.opts.AckWait)
		steps = append(steps, func(ctx context.Context) error {
			if have, ok := current[cfg.Durable]; ok && natsbus.SameConsumer(have, cfg) {
				return nil
			}
			if _, err := js.CreateOrUpdateConsumer(ctx, protocol.RequestStream, cfg); err != nil {
				return fmt.Errorf("create consumer %s: %w", cfg.Durable, err)
			}
			return nil
		})
	}
	return s.provisionClustered(ctx, ns, steps)
}

// ClientURL is the URL clients dial (without credentials); tls:// when
// the server requires TLS.
func (s *Server) ClientURL() string {
	return s.scheme() + "://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
}

func (s *Server) scheme() string {
	if s.opts.TLS.Enabled() {
		return "tls"
	}
	return "nats"
}

// TLS is the server's TLS configuration (zero when it has none).
func (s *Server) TLS() TLSOptions { return s.opts.TLS }

// AdminURL embeds the admin credentials, for `scctl --server` in development.
func (s *Server) AdminURL() string {
	u := url.URL{Scheme: s.scheme(), Host: net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port)),
		User: url.UserPassword(s.users.Admin.User, s.users.Admin.Password)}
	return u.String()
}

// Admin returns the control plane's credentials.
func (s *Server) Admin() Credentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users.Admin
}

// Cluster returns a cluster agent's credentials.
func (s *Server) Cluster(cluster string) (Credentials, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.users.Clusters[cluster]
	return c, ok
}

// StoreDir is where JetStream data and credentials live.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// Shutdown stops the server and waits until it has released its store.
func (s *Server) Shutdown() {
	s.mu.Lock()
	ns := s.ns
	s.ns = nil
	s.mu.Unlock()
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}

// Restart shuts the server down and starts it again on the same port and
// StoreDir, as a control-plane restart would.
func (s *Server) Restart(ctx context.Context) error {
	s.Shutdown()
	return s.start(ctx)
}
