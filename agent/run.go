package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sc-extension/sc-extension/pkg/agent/agentkey"
	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/agent/leader"
	"github.com/sc-extension/sc-extension/pkg/agent/lifecycle"
	"github.com/sc-extension/sc-extension/pkg/agent/query"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
	"github.com/sc-extension/sc-extension/pkg/version"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
)

// agent holds what the leader's components share with the always-on ones.
type agent struct {
	cfg     config
	log     zerolog.Logger
	client  kubernetes.Interface
	meta    metadata.Interface // drift's watches: metadata only
	store   *store.Store
	key     nkeys.KeyPair
	nc      *nats.Conn
	js      jetstream.JetStream
	metrics *health.Metrics
	proc    *lifecycle.Process

	// synced is true while this replica leads and its informers have
	// synced; leading says whether the readiness check should care.
	leading atomic.Bool
	synced  atomic.Bool
}

// keyBackoff paces attempts to load the agent key while the API server is
// unreachable; it retries for as long as the agent runs.
var keyBackoff = lifecycle.Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.2}

// natsDrainTimeout bounds flushing the last status events at shutdown.
const natsDrainTimeout = 10 * time.Second

// run wires the agent and blocks until ctx is cancelled (SIGTERM) or a
// fatal error; the start and stop order is pkg/agent/lifecycle's.
func run(ctx context.Context, cfg config, password natsSecret, log zerolog.Logger) error {
	logStart(log, cfg, password)

	restCfg, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	// Informers, Lease renewals and store writes share this client: the
	// client-go default of 5 QPS would let a burst of requests starve the
	// Lease renewal, and at 30 QPS the intake's ~3 calls per request held
	// it near 7 requests/s (docs/bench.md). A new connection now costs the
	// intake two calls (store.WithAbsence), so the chart's 200/s default
	// admits about 100 creates/s, with room for the Lease and informers.
	restCfg.QPS, restCfg.Burst = float32(cfg.KubeQPS), cfg.KubeBurst
	restCfg.UserAgent = "sc-agent/" + version.Version
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	meta, err := metadata.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes metadata client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes dynamic client: %w", err)
	}

	proc, ctx := lifecycle.New(ctx, log)
	a := &agent{cfg: cfg, log: log, client: client, meta: meta, store: store.New(client, cfg.Namespace),
		metrics: health.NewMetrics(), proc: proc}

	// Probes first (and so stopped last), so that a slow start is visible
	// as "not ready" rather than as a pod that does not answer.
	hs := health.NewServer(cfg.MetricsAddr, a.metrics, log)
	keyLoaded := health.NewFlag("agent key not loaded")
	var ncRef atomic.Pointer[nats.Conn]
	hs.AddReadyCheck("agent-key", keyLoaded.Check)
	hs.AddReadyCheck("nats", func(context.Context) error {
		if nc := ncRef.Load(); nc == nil || !nc.IsConnected() {
			return errors.New("not connected to NATS")
		}
		return nil
	})
	// Every replica answers queries from its own cache of the records.
	records, err := query.NewCache(launcher.NewRecordsFactory(client, cfg.Namespace, 0), log)
	if err != nil {
		return err
	}
	hs.AddReadyCheck("query-cache", func(context.Context) error {
		if !records.Synced() {
			return query.ErrNotSynced
		}
		return nil
	})
	hs.AddReadyCheck("informers", func(context.Context) error {
		if a.leading.Load() && !a.synced.Load() {
			return errors.New("leader informer caches not synced")
		}
		return nil
	})
	proc.Go("health", hs.Run)
	// Started before the key is loaded, so it syncs meanwhile; stopped
	// after the query service that reads it.
	proc.Go("query-cache", records.Run)
	defer func() { _ = proc.Stop(nil) }() // on an early return; a no-op after the Stop below

	a.key, err = lifecycle.Retry(ctx, keyBackoff,
		func(ctx context.Context) (nkeys.KeyPair, error) { return agentkey.Load(ctx, client, cfg.Namespace) },
		func(err error) bool { return errors.Is(err, agentkey.ErrBadKey) },
		func(err error, delay time.Duration) {
			log.Warn().Err(err).Str("namespace", cfg.Namespace).Dur("retryIn", delay).Msg("loading the agent key failed; retrying")
		})
	if err != nil {
		return proc.Stop(fmt.Errorf("load agent key: %w", err))
	}
	keyLoaded.Set(true)
	pub, err := a.key.PublicKey()
	if err != nil {
		return proc.Stop(fmt.Errorf("agent public key: %w", err))
	}

	a.nc, a.js, err = natsbus.Connect(ctx, natsbus.Options{
		URL: cfg.NATSURL, Cluster: cfg.Cluster, User: cfg.NATSUser, Password: string(password),
		CredsFile: cfg.NATSCreds, TLS: cfg.NATSTLS, Name: "sc-agent " + cfg.PodName, Logger: log,
	})
	if err != nil {
		return proc.Stop(err)
	}
	ncRef.Store(a.nc)
	proc.Defer("nats", func() { lifecycle.DrainNATS(a.nc, natsDrainTimeout) })

	// Every replica answers queries; only the leader does the rest.
	proc.Go("query", func(ctx context.Context) error {
		return query.Serve(ctx, a.nc, query.Options{
			Cluster: cfg.Cluster, Cache: records, Reader: reader{Store: a.store, client: client, dyn: dyn, log: log}, PublicKey: pub,
			IsNotFound: store.IsNotFound, Logger: log,
		})
	})

	leaderErr := leader.Run(ctx, leader.Config{
		Client: client, Namespace: cfg.Namespace, LeaseName: cfg.LeaseName, Identity: cfg.PodName,
		Metrics: a.metrics, Log: log,
	}, a.lead)
	if err := proc.Stop(leaderErr); err != nil {
		return err
	}
	log.Info().Msg("stopped")
	return nil
}

// logStart says which build runs where: the first line to read in
// `kubectl logs` after an upgrade.
func logStart(log zerolog.Logger, cfg config, password natsSecret) {
	log.Info().Str("version", version.Version).Str("cluster", cfg.Cluster).Str("namespace", cfg.Namespace).
		Str("pod", cfg.PodName).Str("natsAuth", natsAuthKind(cfg, password)).Str("natsTLS", natsTLSKind(cfg)).Str("jobLogFormat", cfg.Job.LogFormat).
		Msg("starting")
}

func natsAuthKind(cfg config, password natsSecret) string {
	switch {
	case cfg.NATSCreds != "":
		return "creds file"
	case password != "":
		return "user " + cfg.NATSUser
	default:
		return "none"
	}
}

// natsTLSKind says which TLS files are in use, never their content.
func natsTLSKind(cfg config) string {
	switch t := cfg.NATSTLS; {
	case t.CertFile != "":
		return "client certificate " + t.CertFile
	case t.CAFile != "":
		return "CA " + t.CAFile
	case strings.HasPrefix(cfg.NATSURL, "tls://"):
		return "system roots"
	default:
		return "none"
	}
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster kubernetes config (set --kubeconfig outside a cluster): %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}
