package main

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/sc-extension/sc-extension/pkg/agent/drift"
	"github.com/sc-extension/sc-extension/pkg/agent/heartbeat"
	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/agent/lifecycle"
	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/agent/statuswatch"
	"github.com/sc-extension/sc-extension/pkg/kube/inspect"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
	"github.com/sc-extension/sc-extension/pkg/version"
)

// eventComponent is the source of the Events the agent records.
const eventComponent = "sc-extension-agent"

// lead wires one leadership term: intake, launcher, drift, statuswatch and
// heartbeat, on informers that live exactly as long as the term; the order
// in which they stop is lifecycle.Term's. A failing part stops the process:
// it is a wiring bug that another term would hit again.
func (a *agent) lead(ctx context.Context) {
	log := a.log.With().Bool("leader", true).Logger()
	a.leading.Store(true)
	defer func() {
		a.synced.Store(false)
		a.leading.Store(false)
	}()

	records := launcher.NewRecordsFactory(a.client, a.cfg.Namespace, 0)
	jobs := launcher.NewJobsFactory(a.client, a.cfg.Namespace, a.cfg.Job.JobName, 0)
	// sc-job exits before Prometheus could scrape it: the leader observes
	// each run's duration from the Job the launcher watches anyway.
	if _, err := jobs.Batch().V1().Jobs().Informer().AddEventHandler(lifecycle.JobRuns{Metrics: a.metrics}); err != nil {
		a.proc.Fatal(fmt.Errorf("sc-job run metrics: %w", err))
		return
	}
	// Namespace metadata only: the launcher wakes connections parked on a
	// namespace that appears.
	namespaces := launcher.NewNamespacesFactory(a.client, 0)
	// The policy denies the agent's own namespace, which holds the
	// credential Secrets: drift never caches them.
	driftInformers := drift.NewInformers(a.meta, a.cfg.Namespaces, 0)
	factories := []lifecycle.Informers{records, jobs, namespaces, driftInformers}

	// Events outlive the term's context until the controllers have stopped.
	broadcaster := record.NewBroadcaster(record.WithContext(context.WithoutCancel(ctx)))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: eventComponent, Host: a.cfg.PodName})
	publisher := statuspub.New(a.js, a.cfg.Cluster, statuspub.WithLogger(log))

	recordInformer := records.Core().V1().ConfigMaps()
	controllers, err := a.components(recordInformer, jobs, namespaces.Core().V1().Namespaces(), driftInformers, recorder, publisher, log)
	if err != nil {
		a.proc.Fatal(err)
		return
	}
	// A create the term's synced records cache has never seen is stored
	// blind: two API calls, not four. A cache behind the API server costs
	// the store a fallback to reading, never a wrong write.
	intakeStore := a.store.WithAbsence(store.AbsentFromCache(
		recordInformer.Lister().ConfigMaps(a.cfg.Namespace), recordInformer.Informer().HasSynced))
	in, err := intake.New(a.js, intake.Options{
		Cluster: a.cfg.Cluster, Key: a.key, Store: lifecycle.CountingStore{Store: intakeStore, Metrics: a.metrics},
		Status: publisher, IsNotFound: store.IsNotFound, Namespaces: a.cfg.Namespaces, Logger: log,
		Metrics: a.metrics,
	})
	if err != nil {
		a.proc.Fatal(fmt.Errorf("intake: %w", err))
		return
	}

	term := lifecycle.Term{
		Informers: factories, Controllers: controllers, Intake: in.Run, Log: log,
		Synced: func(ctx context.Context) {
			a.synced.Store(true)
			log.Info().Msg("informer caches synced")
			err := heartbeat.Run(ctx, a.nc, heartbeat.Options{
				Cluster: a.cfg.Cluster, Version: version.Version, Pod: a.cfg.PodName, Interval: a.cfg.HeartbeatInterval,
				Logger: log, State: func() heartbeat.State {
					n, _ := recordInformer.Lister().ConfigMaps(a.cfg.Namespace).List(labels.Everything())
					return heartbeat.State{Leader: true, Ready: a.nc.IsConnected() && a.synced.Load(), Connections: len(n), Phases: heartbeat.CountPhases(n)}
				},
			})
			if err != nil {
				log.Error().Err(err).Msg("heartbeat stopped")
			}
		},
	}
	if err := term.Run(ctx); err != nil {
		a.proc.Fatal(err)
	}
}

// components builds the leader's controllers. Each registers its event
// handlers here, before the factories start, so none misses the initial list.
func (a *agent) components(records coreinformers.ConfigMapInformer, jobs informers.SharedInformerFactory,
	namespaces coreinformers.NamespaceInformer, driftInformers *drift.Informers, recorder record.EventRecorder,
	publisher *statuspub.Publisher, log zerolog.Logger) ([]lifecycle.Controller, error) {
	// One decoded-record cache for the launcher, drift and statuswatch:
	// each record version is decoded once per term, not once per controller.
	versions, err := recordcache.New(records.Informer(), log)
	if err != nil {
		return nil, err
	}
	l, err := launcher.New(launcher.Deps{
		Client: a.client, Records: records, Versions: versions, Jobs: jobs.Batch().V1().Jobs(),
		Namespaces: namespaces, Waker: a.store,
		Recorder: recorder, Metrics: a.metrics, Log: log,
	}, a.cfg.Job)
	if err != nil {
		return nil, err
	}
	d, err := drift.New(drift.Deps{
		Namespace: a.cfg.Namespace, Records: records, Versions: versions, Informers: driftInformers, Client: a.client, Policy: a.cfg.Namespaces,
		DriftOf: inspect.DriftOf, NotOurs: inspect.NotOurs, Store: a.store,
		Recorder: recorder, Metrics: a.metrics, Log: log,
	})
	if err != nil {
		return nil, err
	}
	sw, err := statuswatch.New(statuswatch.Deps{
		Cluster: a.cfg.Cluster, Namespace: a.cfg.Namespace, Client: a.client, Records: records, Versions: versions,
		// One attempt per sync: the controller's workqueue already backs
		// off per connection, and in-publisher retries would hold one of
		// its two workers for every other connection's events.
		Publisher: statuspub.New(a.js, a.cfg.Cluster, statuspub.WithLogger(log), statuspub.WithRetry(1, 0)),
		Metrics:   a.metrics, Log: log,
	})
	if err != nil {
		return nil, err
	}
	return []lifecycle.Controller{
		{Name: launcher.ControllerName, Run: l.Run},
		{Name: drift.ControllerName, Run: d.Run},
		{Name: statuswatch.ControllerName, Run: sw.Run},
	}, nil
}
