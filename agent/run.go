package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sc-extension/sc-extension/pkg/agent/agentkey"
	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/leader"
	"github.com/sc-extension/sc-extension/pkg/agent/query"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
)

// agent holds what the leader's components share with the always-on ones.
type agent struct {
	cfg     config
	log     zerolog.Logger
	client  kubernetes.Interface
	store   *store.Store
	key     nkeys.KeyPair
	nc      *nats.Conn
	js      jetstream.JetStream
	metrics *health.Metrics

	// synced is true while this replica leads and its informers have
	// synced; leading says whether the readiness check should care.
	leading atomic.Bool
	synced  atomic.Bool
	// fatal receives an error that must stop the process (a wiring bug
	// that another leadership term would hit again).
	fatal chan error
}

// run starts the agent and blocks until ctx is cancelled (SIGTERM) or a
// fatal error. Shutdown order: the leader's work stops first (intake before
// the controllers, so no request is acknowledged half-way), then the Lease
// is released, then queries drain, then NATS, then the probes.
func run(ctx context.Context, cfg config, password natsSecret, log zerolog.Logger) error {
	log.Info().Str("cluster", cfg.Cluster).Str("namespace", cfg.Namespace).Str("pod", cfg.PodName).
		Str("version", version).Str("natsAuth", natsAuthKind(cfg, password)).Msg("starting")

	restCfg, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	// Informers, Lease renewals and store writes share this client; the
	// client-go default of 5 QPS would let a burst of requests starve the
	// Lease renewal.
	restCfg.QPS, restCfg.Burst = 30, 60
	restCfg.UserAgent = "sc-agent/" + version
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes dynamic client: %w", err)
	}

	a := &agent{cfg: cfg, log: log, client: client, store: store.New(client, cfg.Namespace),
		metrics: health.NewMetrics(), fatal: make(chan error, 1)}

	// Probes first, so that a slow start is visible as "not ready" rather
	// than as a pod that does not answer.
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
	hs.AddReadyCheck("informers", func(context.Context) error {
		if a.leading.Load() && !a.synced.Load() {
			return errors.New("leader informer caches not synced")
		}
		return nil
	})
	healthCtx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
	healthDone := make(chan error, 1)
	go func() { healthDone <- hs.Run(healthCtx) }()
	defer func() {
		stopHealth()
		if err := <-healthDone; err != nil {
			log.Error().Err(err).Msg("health server")
		}
	}()

	if a.key, err = loadKey(ctx, client, cfg.Namespace, log); err != nil {
		return err
	}
	keyLoaded.Set(true)
	pub, err := a.key.PublicKey()
	if err != nil {
		return fmt.Errorf("agent public key: %w", err)
	}

	a.nc, a.js, err = natsbus.Connect(ctx, natsbus.Options{
		URL: cfg.NATSURL, Cluster: cfg.Cluster, User: cfg.NATSUser, Password: string(password),
		CredsFile: cfg.NATSCreds, Name: "sc-agent " + cfg.PodName, Logger: log,
	})
	if err != nil {
		return err
	}
	ncRef.Store(a.nc)
	defer a.closeNATS()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-a.fatal:
			cancel(err)
		case <-ctx.Done():
		}
	}()

	// Every replica answers queries; only the leader does the rest.
	queryDone := make(chan error, 1)
	go func() {
		queryDone <- query.Serve(ctx, a.nc, query.Options{
			Cluster: cfg.Cluster, Reader: reader{Store: a.store, client: client, dyn: dyn, log: log}, PublicKey: pub,
			IsNotFound: store.IsNotFound, Logger: log,
		})
	}()

	leaderErr := leader.Run(ctx, leader.Config{
		Client: client, Namespace: cfg.Namespace, LeaseName: cfg.LeaseName, Identity: cfg.PodName,
		Metrics: a.metrics, Log: log,
	}, a.lead)
	cancel(nil) // a leader.Run configuration error stops the queries too
	queryErr := <-queryDone

	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if err := errors.Join(leaderErr, queryErr); err != nil {
		return err
	}
	log.Info().Msg("stopped")
	return nil
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

// loadKey retries while the API server is unreachable, for as long as ctx
// lives; a Secret that holds something other than a key is an operator's
// decision, so it stops. The delay doubles up to keyRetryMax; it is written
// out because wait.Backoff stops retrying altogether once its Cap is reached.
func loadKey(ctx context.Context, client kubernetes.Interface, ns string, log zerolog.Logger) (nkeys.KeyPair, error) {
	delay := 500 * time.Millisecond
	for {
		k, err := agentkey.Load(ctx, client, ns)
		switch {
		case err == nil:
			return k, nil
		case errors.Is(err, agentkey.ErrBadKey):
			return nil, fmt.Errorf("load agent key: %w", err)
		}
		log.Warn().Err(err).Str("namespace", ns).Dur("retryIn", delay).Msg("loading the agent key failed; retrying")
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("load agent key: %w", ctx.Err())
		case <-time.After(wait.Jitter(delay, 0.2)):
		}
		delay = min(2*delay, keyRetryMax)
	}
}

// keyRetryMax bounds the delay between attempts to load the agent key.
const keyRetryMax = 30 * time.Second

// closeNATS flushes what is buffered (a last status event) and closes.
func (a *agent) closeNATS() {
	closed := make(chan struct{})
	a.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := a.nc.Drain(); err != nil {
		a.nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		a.nc.Close()
	}
}
