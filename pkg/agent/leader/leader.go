package leader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
)

// DefaultLeaseName is the Lease the agent replicas compete for.
const DefaultLeaseName = "sc-agent"

// Defaults as in core Kubernetes components: a crashed leader is replaced
// within LeaseDuration; a leader that shuts down cleanly releases at once.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// ErrConfig is returned for a configuration that can never elect anyone.
var ErrConfig = errors.New("invalid leader election configuration")

// Config says which Lease to compete for and as whom.
type Config struct {
	Client    kubernetes.Interface
	Namespace string
	LeaseName string
	// Identity must be unique among replicas: the pod name.
	Identity string

	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration

	Metrics *health.Metrics
	Log     zerolog.Logger
}

func (c Config) withDefaults() Config {
	if c.LeaseName == "" {
		c.LeaseName = DefaultLeaseName
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = DefaultRenewDeadline
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = DefaultRetryPeriod
	}
	return c
}

// Run competes for the Lease until ctx is cancelled and calls lead each time
// this replica becomes leader. lead's context ends when the Lease is lost or
// ctx is cancelled; Run waits for lead to return before it releases the
// Lease or competes again, so two replicas never run lead at the same time.
// Run returns nil once ctx is cancelled and the Lease is released.
func Run(ctx context.Context, cfg Config, lead func(context.Context)) error {
	cfg = cfg.withDefaults()
	if cfg.Client == nil || cfg.Namespace == "" || cfg.Identity == "" {
		return fmt.Errorf("%w: client, namespace and identity are required", ErrConfig)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.LeaseName},
		Client:     cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	log := cfg.Log.With().Str("lease", cfg.Namespace+"/"+cfg.LeaseName).Str("identity", cfg.Identity).Logger()
	for ctx.Err() == nil {
		if err := term(ctx, cfg, lock, log, lead); err != nil {
			return err
		}
	}
	return nil
}

// term is one campaign: wait for the Lease, lead until it is lost or ctx
// ends, and make sure lead has returned before the Lease is given up.
func term(ctx context.Context, cfg Config, lock resourcelock.Interface, log zerolog.Logger, lead func(context.Context)) error {
	// The elector releases the Lease as soon as its context ends
	// (ReleaseOnCancel), so it gets a context of its own that is cancelled
	// only after lead has stopped.
	electCtx, cancelElect := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelElect()

	var (
		mu       sync.Mutex
		leading  bool
		stopping bool
		done     = make(chan struct{})
	)
	// stop forbids lead from starting and waits for it if it already has.
	stop := func() {
		mu.Lock()
		stopping = true
		wasLeading := leading
		mu.Unlock()
		if wasLeading {
			<-done
		}
	}

	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            cfg.LeaseName,
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.RenewDeadline,
		RetryPeriod:     cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lostCtx context.Context) {
				mu.Lock()
				if stopping {
					mu.Unlock()
					return
				}
				leading = true
				mu.Unlock()
				defer close(done)

				runCtx, cancel := context.WithCancel(lostCtx)
				defer cancel()
				defer context.AfterFunc(ctx, cancel)()
				cfg.Metrics.SetLeader(true)
				log.Info().Msg("became leader")
				lead(runCtx)
				cfg.Metrics.SetLeader(false)
				log.Info().Msg("stopped leading")
			},
			OnStoppedLeading: func() { cfg.Metrics.SetLeader(false) },
			OnNewLeader: func(identity string) {
				if identity != cfg.Identity {
					log.Info().Str("leader", identity).Msg("observed leader")
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}

	shutdownDone := make(chan struct{})
	termOver := make(chan struct{})
	go func() {
		defer close(shutdownDone)
		select {
		case <-ctx.Done():
			stop()
			cancelElect() // now the elector may release the Lease
		case <-termOver:
		}
	}()

	le.Run(electCtx) // returns when the Lease is lost or electCtx ends
	stop()
	close(termOver)
	<-shutdownDone
	return nil
}
