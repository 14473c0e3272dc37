package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/sc-extension/sc-extension/pkg/agent/drift"
	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/heartbeat"
	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/agent/statuswatch"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/inspect"
	kuberecord "github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// eventComponent is the source of the Events the agent records.
const eventComponent = "sc-extension-agent"

// lead runs one leadership term: intake, launcher, drift, statuswatch and
// heartbeat, on informers that live exactly as long as the term. When ctx
// ends, intake stops first and is waited for, so a request being applied
// is finished (and acked) or NAKed before anything else stops.
func (a *agent) lead(ctx context.Context) {
	log := a.log.With().Bool("leader", true).Logger()
	a.leading.Store(true)
	defer func() {
		a.synced.Store(false)
		a.leading.Store(false)
	}()

	ctrlCtx, stopControllers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopControllers()

	records := launcher.NewRecordsFactory(a.client, a.cfg.Namespace, 0)
	jobs := launcher.NewJobsFactory(a.client, a.cfg.Namespace, a.cfg.Job.JobName, 0)
	// The agent's own namespace holds the credential Secrets: never cache
	// them for drift.
	scope := a.cfg.Scope
	scope.Denied = append(append([]string(nil), scope.Denied...), a.cfg.Namespace)
	driftFactories := drift.NewFactories(a.client, scope, 0)
	factories := append([]informers.SharedInformerFactory{records, jobs}, driftFactories...)

	broadcaster := record.NewBroadcaster(record.WithContext(ctrlCtx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: eventComponent, Host: a.cfg.PodName})
	publisher := statuspub.New(a.js, a.cfg.Cluster, statuspub.WithLogger(log))

	recordInformer := records.Core().V1().ConfigMaps()
	runners, err := a.components(recordInformer, jobs, driftFactories, scope, recorder, publisher, log)
	if err != nil {
		a.fatal <- err
		return
	}
	in, err := intake.New(a.js, intake.Options{
		Cluster: a.cfg.Cluster, Key: a.key, Store: countingStore{Store: a.store, metrics: a.metrics},
		Status: publisher, IsNotFound: store.IsNotFound, Logger: log,
	})
	if err != nil {
		a.fatal <- fmt.Errorf("intake: %w", err)
		return
	}

	for _, f := range factories {
		f.Start(ctrlCtx.Done())
	}
	defer func() {
		for _, f := range factories {
			f.Shutdown()
		}
	}()

	var wg sync.WaitGroup
	for name, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r(ctrlCtx); err != nil && ctrlCtx.Err() == nil {
				a.fatal <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if !waitSynced(ctrlCtx, factories) {
			return
		}
		a.synced.Store(true)
		log.Info().Msg("informer caches synced")
		err := heartbeat.Run(ctrlCtx, a.nc, heartbeat.Options{
			Cluster: a.cfg.Cluster, Version: version, Pod: a.cfg.PodName, Interval: a.cfg.HeartbeatInterval,
			Logger: log, State: func() heartbeat.State {
				n, _ := recordInformer.Lister().ConfigMaps(a.cfg.Namespace).List(labels.Everything())
				return heartbeat.State{Leader: true, Ready: a.nc.IsConnected() && a.synced.Load(), Connections: len(n)}
			},
		})
		if err != nil {
			log.Error().Err(err).Msg("heartbeat stopped")
		}
	}()

	intakeDone := make(chan error, 1)
	go func() { intakeDone <- in.Run(ctx) }()
	<-ctx.Done()
	if err := <-intakeDone; err != nil {
		log.Error().Err(err).Msg("intake stopped")
	}
	log.Info().Msg("intake stopped; stopping controllers")
	stopControllers()
	wg.Wait()
}

// components builds the leader's controllers. Each registers its event
// handlers here, before the factories start, so none misses the initial list.
func (a *agent) components(records coreinformers.ConfigMapInformer, jobs informers.SharedInformerFactory,
	driftFactories []informers.SharedInformerFactory, scope drift.Scope, recorder record.EventRecorder,
	publisher *statuspub.Publisher, log zerolog.Logger) (map[string]func(context.Context) error, error) {
	l, err := launcher.New(launcher.Deps{
		Client: a.client, Records: records, Jobs: jobs.Batch().V1().Jobs(), Decode: kuberecord.Decode,
		Recorder: recorder, Metrics: a.metrics, Log: log,
	}, a.cfg.Job)
	if err != nil {
		return nil, err
	}
	d, err := drift.New(drift.Deps{
		Namespace: a.cfg.Namespace, Records: records, Factories: driftFactories, Scope: scope,
		Decode: kuberecord.Decode, DriftOf: inspect.DriftOf, Store: a.store, IsNotFound: store.IsNotFound,
		Recorder: recorder, Metrics: a.metrics, Log: log,
	})
	if err != nil {
		return nil, err
	}
	sw, err := statuswatch.New(statuswatch.Deps{
		Cluster: a.cfg.Cluster, Namespace: a.cfg.Namespace, Records: records, Decode: kuberecord.Decode,
		Publisher: publisher, Metrics: a.metrics, Log: log,
	})
	if err != nil {
		return nil, err
	}
	return map[string]func(context.Context) error{
		launcher.ControllerName:    l.Run,
		drift.ControllerName:       d.Run,
		statuswatch.ControllerName: sw.Run,
	}, nil
}

// waitSynced waits for every started informer of every factory.
func waitSynced(ctx context.Context, factories []informers.SharedInformerFactory) bool {
	for _, f := range factories {
		for _, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return false
			}
		}
	}
	return true
}

// countingStore counts intake outcomes for /metrics.
type countingStore struct {
	*store.Store
	metrics *health.Metrics
}

func (s countingStore) Apply(ctx context.Context, ch connection.Change) (connection.Connection, bool, error) {
	c, applied, err := s.Store.Apply(ctx, ch)
	switch {
	case err != nil:
		s.metrics.RequestProcessed(health.OutcomeError)
	case applied:
		s.metrics.RequestProcessed(health.OutcomeApplied)
	default:
		s.metrics.RequestProcessed(health.OutcomeDuplicate)
	}
	return c, applied, err
}
