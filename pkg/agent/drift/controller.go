package drift

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	k8srecord "k8s.io/client-go/tools/record"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/kube/controller"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
)

// ControllerName names the controller in logs, the workqueue and Events.
const ControllerName = "drift"

// Kinds of rendered objects drift watches, as in connection.ResourceRef.
const (
	KindSecret         = "Secret"
	KindServiceAccount = "ServiceAccount"
)

// ReasonDrift is the Event reason and the status reason MarkPending records.
const ReasonDrift = "Drift"

// Store is the part of pkg/kube/store drift needs; a connection without a
// record is reported with an error wrapping record.ErrNotFound.
type Store interface {
	Get(ctx context.Context, id string) (connection.Connection, error)
	MarkPending(ctx context.Context, id, reason, message string) error
}

// DriftOf says whether a rendered object no longer matches what sc-job
// wrote, and why (inspect.DriftOf). The reason must never quote data.
type DriftOf func(obj metav1.Object, data map[string][]byte) (drifted bool, reason string)

// NotOurs says whether obj, found where c's record says ref was rendered,
// is another object than the one sc-job created (inspect.NotOurs: its UID
// is not the recorded one), and why. c is either the Store's fresh read or
// a cached record's recordcache.Version: its name, status.resources and
// status.owned are there, its spec beyond name and scope is not.
type NotOurs func(c connection.Connection, ref connection.ResourceRef, obj metav1.Object) (notOurs bool, reason string)

// Deps are the controller's collaborators.
type Deps struct {
	// Namespace is the agent's, where the records live.
	Namespace string
	Records   coreinformers.ConfigMapInformer
	// Versions is the decoded-record cache of Records (recordcache.New);
	// nil builds one. Controllers that share an informer share its cache,
	// so each record version is decoded once.
	Versions *recordcache.Cache
	// Informers are NewInformers' result; New registers its handlers on
	// them, so they must be started after New.
	Informers *Informers
	// Client reads a rendered object in full when its metadata changed.
	Client kubernetes.Interface
	// Policy is where connections may render; objects elsewhere are
	// never looked at. Its Release must be Namespace.
	Policy   namespaces.Policy
	DriftOf  DriftOf
	NotOurs  NotOurs
	Store    Store
	Recorder k8srecord.EventRecorder
	Metrics  *health.Metrics
	Log      zerolog.Logger
}

// objectKey names one rendered object.
type objectKey struct {
	Kind, Namespace, Name string
}

func (k objectKey) String() string { return k.Kind + " " + k.Namespace + "/" + k.Name }

// Controller marks connections Pending when their rendered objects drift.
type Controller struct {
	namespace string
	policy    namespaces.Policy
	records   corelisters.ConfigMapLister
	// claimed is the records informer's indexer, ClaimsIndex among its
	// indices; versions holds each record version decoded.
	claimed   cache.Indexer
	versions  *recordcache.Cache
	informers *Informers
	client    kubernetes.Interface
	synced    []cache.InformerSynced
	driftOf   DriftOf
	notOurs   NotOurs
	store     Store
	recorder  k8srecord.EventRecorder
	metrics   *health.Metrics
	log       zerolog.Logger
	worker    *controller.Worker[objectKey]
	selector  labels.Selector

	// verified holds the identity of each claimed object last read and
	// found as rendered: an event that changes nothing drift decides on (a
	// resync, a new term's initial list) costs no read.
	mu       sync.Mutex
	verified map[objectKey]identity
}

// identity is what drift keeps of a verified object: its resourceVersion,
// which names one version of one object, and its UID, which the records'
// claims are compared with.
type identity struct {
	ResourceVersion string
	UID             types.UID
}

// ErrInvalidDeps: New was called without something it needs.
var ErrInvalidDeps = errors.New("drift: missing dependency")

// New registers the event handlers; call Run to start.
func New(d Deps) (*Controller, error) {
	if d.Namespace == "" || d.Records == nil || d.Informers == nil || d.Client == nil || d.DriftOf == nil ||
		d.NotOurs == nil || d.Store == nil || d.Recorder == nil {
		return nil, fmt.Errorf("%w: namespace, records, informers, client, DriftOf, NotOurs, store and recorder are required", ErrInvalidDeps)
	}
	if d.Policy.Release != d.Namespace {
		// The records' namespace holds every credential Secret: a policy
		// for another release would let drift watch them.
		return nil, fmt.Errorf("%w: the policy's release namespace %q is not the agent's %q", ErrInvalidDeps, d.Policy.Release, d.Namespace)
	}
	log := d.Log.With().Str("controller", ControllerName).Logger()
	if d.Versions == nil {
		v, err := recordcache.New(d.Records.Informer(), log)
		if err != nil {
			return nil, fmt.Errorf("drift: %w", err)
		}
		d.Versions = v
	}
	// One drift controller per informer: a second ClaimsIndex is refused.
	if err := d.Records.Informer().AddIndexers(cache.Indexers{ClaimsIndex: d.Versions.IndexFunc(claimKeys)}); err != nil {
		return nil, fmt.Errorf("%w: index records by claimed object: %w", ErrInvalidDeps, err)
	}
	c := &Controller{
		namespace: d.Namespace,
		policy:    d.Policy,
		records:   d.Records.Lister(),
		claimed:   d.Records.Informer().GetIndexer(),
		versions:  d.Versions,
		informers: d.Informers,
		client:    d.Client,
		synced:    []cache.InformerSynced{d.Records.Informer().HasSynced},
		driftOf:   d.DriftOf,
		notOurs:   d.NotOurs,
		store:     d.Store,
		recorder:  d.Recorder,
		metrics:   d.Metrics,
		log:       log,
		selector:  record.LabelSelector(),
		verified:  map[objectKey]identity{},
	}
	c.worker = controller.New(ControllerName, c.reconcile, controller.Options[objectKey]{Log: c.log})
	for _, kind := range []string{KindSecret, KindServiceAccount} {
		for _, inf := range d.Informers.byKind(kind) {
			c.synced = append(c.synced, inf.Informer().HasSynced)
			if _, err := inf.Informer().AddEventHandler(c.objectHandler(kind)); err != nil {
				return nil, fmt.Errorf("drift: watch %ss: %w", kind, err)
			}
		}
	}
	if _, err := d.Records.Informer().AddEventHandler(c.recordHandler()); err != nil {
		return nil, fmt.Errorf("drift: watch records: %w", err)
	}
	return c, nil
}

// recordHandler checks the objects of a record that just became Succeeded:
// one may already be missing, deleted while sc-job was still running.
func (c *Controller) recordHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj any) {
			oldCM, ok1 := oldObj.(*corev1.ConfigMap)
			newCM, ok2 := newObj.(*corev1.ConfigMap)
			if !ok1 || !ok2 || oldCM.ResourceVersion == newCM.ResourceVersion {
				return
			}
			was, is := c.versions.Get(oldCM), c.versions.Get(newCM)
			if was.Err == nil && is.Err == nil && was.Phase != connection.PhaseSucceeded && is.Phase == connection.PhaseSucceeded {
				c.enqueueResources(is.Connection())
			}
		},
	}
}

func (c *Controller) objectHandler(kind string) cache.ResourceEventHandler {
	enqueue := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		m, ok := obj.(metav1.Object)
		if !ok || !mayBeRendered(kind, m.GetName()) || c.policy.Allows(m.GetNamespace()) != nil {
			return
		}
		c.worker.Add(objectKey{Kind: kind, Namespace: m.GetNamespace(), Name: m.GetName()})
	}
	return cache.ResourceEventHandlerFuncs{
		// Adds include the initial list: objects edited while no agent
		// led are caught when the watch starts.
		AddFunc: enqueue,
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(metav1.Object)
			n, ok2 := newObj.(metav1.Object)
			if ok1 && ok2 && o.GetResourceVersion() == n.GetResourceVersion() {
				return
			}
			enqueue(newObj)
		},
		DeleteFunc: enqueue,
	}
}

func (c *Controller) enqueueResources(conn connection.Connection) {
	for _, r := range conn.Status.Resources {
		if (r.Kind == KindSecret || r.Kind == KindServiceAccount) && c.policy.Allows(r.Namespace) == nil {
			c.worker.Add(objectKey{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name})
		}
	}
}

// Run works until ctx is cancelled.
func (c *Controller) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.worker.Queue().ShutDown()
		return fmt.Errorf("drift: informer caches did not sync: %w", ctx.Err())
	}
	// Objects deleted while no agent led produce no event: check every
	// object a Succeeded connection claims, once.
	if err := c.sweep(); err != nil {
		c.worker.Queue().ShutDown()
		return err
	}
	c.log.Info().Msg("started")
	c.worker.Run(ctx, 1)
	return nil
}

func (c *Controller) sweep() error {
	conns, err := c.succeeded()
	if err != nil {
		return err
	}
	for _, sc := range conns {
		c.enqueueResources(sc.conn)
	}
	return nil
}

// reconcile is the worker's sync; drift never needs a timer.
func (c *Controller) reconcile(ctx context.Context, key objectKey) (controller.Result, error) {
	return controller.Result{}, c.sync(ctx, key)
}

type storedConn struct {
	id     string
	record *corev1.ConfigMap
	conn   connection.Connection
}

// succeeded lists the connections whose rendered objects are meant to be
// in place: only those can drift. Pending, Running and Failed ones are
// sc-job's, and a connection being deleted may remove its own objects. The
// start-up sweep is its only caller; an event looks its record up in
// ClaimsIndex (owners).
func (c *Controller) succeeded() ([]storedConn, error) {
	cms, err := c.records.ConfigMaps(c.namespace).List(c.selector)
	if err != nil {
		return nil, fmt.Errorf("list records from cache: %w", err)
	}
	var out []storedConn
	for _, cm := range cms {
		if sc, ok := c.settled(cm); ok {
			out = append(out, sc)
		}
	}
	return out, nil
}

// owners are the settled connections whose records claim key, by id: the
// index finds the records, their cached decoded version says whether they
// are settled. An undecodable record is in no index entry.
func (c *Controller) owners(key objectKey) ([]storedConn, error) {
	objs, err := c.claimed.ByIndex(ClaimsIndex, key.String())
	if err != nil {
		return nil, fmt.Errorf("look up records claiming %s: %w", key, err)
	}
	var out []storedConn
	for _, o := range objs {
		cm, ok := o.(*corev1.ConfigMap)
		if !ok || cm.Namespace != c.namespace || !c.selector.Matches(labels.Set(cm.Labels)) {
			continue
		}
		if sc, ok := c.settled(cm); ok && claims(sc.conn, key) {
			out = append(out, sc)
		}
	}
	slices.SortFunc(out, func(a, b storedConn) int { return strings.Compare(a.id, b.id) })
	return out, nil
}

// settled is cm's connection if it decodes (once per version) and is
// Succeeded with no deletion pending.
func (c *Controller) settled(cm *corev1.ConfigMap) (storedConn, bool) {
	v := c.versions.Get(cm)
	if v.Err != nil || v.Phase != connection.PhaseSucceeded || v.Deleting {
		return storedConn{}, false
	}
	return storedConn{id: record.ID(cm), record: cm, conn: v.Connection()}, true
}

func claims(conn connection.Connection, key objectKey) bool {
	return slices.Contains(conn.Status.Resources, key.ref())
}

func (k objectKey) ref() connection.ResourceRef {
	return connection.ResourceRef{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name}
}
