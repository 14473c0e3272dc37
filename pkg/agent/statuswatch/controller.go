package statuswatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/controller"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// ControllerName names the controller in logs and the workqueue.
const ControllerName = "statuswatch"

// Publisher sends one status event (statuspub.Publisher).
type Publisher interface {
	Publish(ctx context.Context, ev protocol.StatusEvent) error
}

// Deps are the watch's collaborators.
type Deps struct {
	Cluster   string
	Namespace string
	// Client releases a removed record (record.Finalizer) once its Deleted
	// event is published (Release: a patch of its finalizers alone).
	Client kubernetes.Interface
	// Records is an informer on the record ConfigMaps in Namespace.
	Records coreinformers.ConfigMapInformer
	// Versions is the decoded-record cache of Records (recordcache.New);
	// nil builds one. Controllers that share an informer share its cache,
	// so each record version is decoded once.
	Versions  *recordcache.Cache
	Publisher Publisher
	Metrics   *health.Metrics
	Log       zerolog.Logger
	// RateLimiter overrides the publish retry backoff (tests).
	RateLimiter workqueue.TypedRateLimiter[string]
}

// Controller publishes status events for record changes.
type Controller struct {
	cluster   string
	namespace string
	client    kubernetes.Interface
	records   corelisters.ConfigMapLister
	versions  *recordcache.Cache
	synced    cache.InformerSynced
	publisher Publisher
	metrics   *health.Metrics
	log       zerolog.Logger
	worker    *controller.Worker[string]

	// removed holds the last state of records deleted without passing
	// through the terminating state (no record.Finalizer: written by an
	// older release, or deleted by hand) and not yet reported: once such a
	// record is gone the cache cannot say what it was. Best effort: a
	// restart loses them, which is why the store holds every record.
	mu      sync.Mutex
	removed map[string]connection.Connection
}

// ErrInvalidDeps: New was called without something it needs.
var ErrInvalidDeps = errors.New("statuswatch: missing dependency")

// New registers the event handlers; call Run to start publishing.
func New(d Deps) (*Controller, error) {
	if d.Cluster == "" || d.Namespace == "" || d.Client == nil || d.Records == nil || d.Publisher == nil {
		return nil, fmt.Errorf("%w: cluster, namespace, client, records informer and publisher are required", ErrInvalidDeps)
	}
	rl := d.RateLimiter
	if rl == nil {
		// Publishing is cheap and the control plane waits for it: retry
		// sooner and allow more than the API-writing controllers do.
		rl = controller.RateLimiter[string](200*time.Millisecond, 2*time.Minute, 20, 200)
	}
	log := d.Log.With().Str("controller", ControllerName).Logger()
	if d.Versions == nil {
		v, err := recordcache.New(d.Records.Informer(), log)
		if err != nil {
			return nil, fmt.Errorf("statuswatch: %w", err)
		}
		d.Versions = v
	}
	c := &Controller{
		cluster:   d.Cluster,
		namespace: d.Namespace,
		client:    d.Client,
		records:   d.Records.Lister(),
		versions:  d.Versions,
		synced:    d.Records.Informer().HasSynced,
		publisher: d.Publisher,
		metrics:   d.Metrics,
		log:       log,
		removed:   map[string]connection.Connection{},
	}
	c.worker = controller.New(ControllerName, c.reconcile, controller.Options[string]{RateLimiter: rl, Log: c.log})
	_, err := d.Records.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		// Adds include the initial list: that is the "publish every
		// record once on start" sweep (JetStream's duplicate window drops
		// what the control plane already has), and it finds the records
		// removed while no agent led, still terminating, owed a Deleted.
		AddFunc:    c.onAdd,
		UpdateFunc: c.onUpdate,
		DeleteFunc: c.onDelete,
	})
	if err != nil {
		return nil, fmt.Errorf("statuswatch: watch records: %w", err)
	}
	return c, nil
}

func (c *Controller) onAdd(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok || !record.IsRecord(cm) {
		return
	}
	id := record.ID(cm)
	// Re-created before its deletion was reported: the new record's status
	// supersedes it. Handlers run in event order, so this never drops a
	// deletion that happened after this add.
	c.mu.Lock()
	delete(c.removed, id)
	c.mu.Unlock()
	c.worker.Add(id)
}

func (c *Controller) onUpdate(oldObj, newObj any) {
	oldCM, ok1 := oldObj.(*corev1.ConfigMap)
	newCM, ok2 := newObj.(*corev1.ConfigMap)
	if !ok1 || !ok2 || !record.IsRecord(newCM) || oldCM.ResourceVersion == newCM.ResourceVersion {
		return
	}
	if record.Terminating(newCM) {
		c.worker.Add(record.ID(newCM))
		return
	}
	// Both versions come decoded from the cache: an update costs no decode.
	was, is := c.versions.Get(oldCM), c.versions.Get(newCM)
	if was.Err != nil || is.Err != nil || statuspub.Changed(was.Connection(), is.Connection()) {
		// An undecodable side cannot be compared; the worker decides.
		c.worker.Add(record.ID(newCM))
	}
}

func (c *Controller) onDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok || !record.IsRecord(cm) {
		return
	}
	if record.Terminating(cm) {
		// It went away through the terminating state: whoever released
		// record.Finalizer published its Deleted first (sync), and any
		// other finalizer is not a reason to report it twice.
		return
	}
	id := record.ID(cm)
	// The final state's summary: the records informer attaches it to the
	// object itself (launcher.RecordForCache), whatever the cache dropped.
	v := c.versions.Get(cm)
	conn := v.Connection()
	if v.Err != nil {
		c.log.Warn().Err(v.Err).Str("objectId", id).Msg("deleted record is undecodable; reporting Deleted by id only")
		conn = connection.Connection{Spec: connection.Spec{Name: id}}
	}
	c.mu.Lock()
	c.removed[id] = conn
	c.mu.Unlock()
	c.worker.Add(id)
}

// Run publishes until ctx is cancelled.
func (c *Controller) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		c.worker.Queue().ShutDown()
		return fmt.Errorf("statuswatch: informer cache did not sync: %w", ctx.Err())
	}
	c.log.Info().Msg("started")
	// Publishing is I/O bound and per connection independent.
	c.worker.Run(ctx, 2)
	return nil
}

// reconcile is the worker's sync; statuswatch never needs a timer.
func (c *Controller) reconcile(ctx context.Context, id string) (controller.Result, error) {
	return controller.Result{}, c.sync(ctx, id)
}

// sync publishes the record's current status; for a removed (terminating)
// record, Deleted and then the release of its finalizer.
func (c *Controller) sync(ctx context.Context, id string) error {
	cm, err := c.records.ConfigMaps(c.namespace).Get(connection.ConfigMapName(id))
	switch {
	case apierrors.IsNotFound(err):
		return c.publishDeleted(ctx, id)
	case err != nil:
		return fmt.Errorf("get record %s from cache: %w", id, err)
	}
	if record.Terminating(cm) {
		return c.finish(ctx, id, cm)
	}
	// The event is the record's summary (recordcache.Version holds all an
	// event says): the informer keeps no record data to decode, and the
	// start-up sweep publishes every record without reading one. A version
	// that does not decode was logged once, as a warning, by the cache when
	// it was stored.
	v := c.versions.Get(cm)
	if v.Err != nil {
		msg := "undecodable record; not publishing" // nothing truthful to say; its next change brings it back
		if errors.Is(v.Err, record.ErrUnsupportedVersion) {
			msg = "record written by a newer release; skipped, not publishing"
		}
		c.log.Debug().Err(v.Err).Str("objectId", id).Msg(msg)
		return nil
	}
	conn := v.Connection()
	ev := statuspub.FromConnection(c.cluster, conn)
	if err := c.publisher.Publish(ctx, ev); err != nil {
		return fmt.Errorf("status of %s: %w", id, err)
	}
	c.metrics.StatusPublished(string(ev.Phase))
	c.log.Debug().Str("objectId", id).Str("connection", conn.Spec.Name).Str("requestId", ev.RequestID).
		Str("phase", string(ev.Phase)).Int64("generation", ev.Generation).Msg("published status")
	return nil
}

func (c *Controller) publishDeleted(ctx context.Context, id string) error {
	c.mu.Lock()
	conn, ok := c.removed[id]
	c.mu.Unlock()
	if !ok {
		return nil // already reported
	}
	ev := statuspub.Deleted(c.cluster, conn)
	ev.ObjectID = id // the label is authoritative even when the spec was unreadable
	if err := c.publisher.Publish(ctx, ev); err != nil {
		return fmt.Errorf("deletion of %s: %w", id, err)
	}
	c.mu.Lock()
	if c.removed[id].Generation == conn.Generation {
		delete(c.removed, id)
	}
	c.mu.Unlock()
	c.metrics.StatusPublished(string(ev.Phase))
	c.log.Info().Str("objectId", id).Str("connection", conn.Spec.Name).Str("requestId", ev.RequestID).Msg("published deletion")
	return nil
}

// finish reports a removed record as Deleted and only then releases it:
// until the stream has acknowledged the event, the finalizer keeps the
// record, so a failed publish, a crash or a leader change in between
// leaves it for the next attempt or the next leader's initial sweep.
// Publishing it twice is harmless: same seq, same Nats-Msg-Id.
func (c *Controller) finish(ctx context.Context, id string, cm *corev1.ConfigMap) error {
	if !record.HasFinalizer(cm) {
		return nil // released already; the delete event follows
	}
	v := c.versions.Get(cm)
	if errors.Is(v.Err, record.ErrUnsupportedVersion) {
		// Its release owes the Deleted event and the release of the
		// finalizer: this build can say neither what it was nor write it.
		c.log.Warn().Err(v.Err).Str("objectId", id).Msg("removed record written by a newer release; skipped, left for that release")
		return nil
	}
	conn := v.Connection()
	if v.Err != nil {
		// Still release it: a corrupt record must not stay forever.
		c.log.Warn().Err(v.Err).Str("objectId", id).Msg("removed record is undecodable; reporting Deleted by id only")
		conn = connection.Connection{Spec: connection.Spec{Name: v.Name}} // the record's annotation says it
	}
	ev := statuspub.Deleted(c.cluster, conn)
	ev.ObjectID = id // the label is authoritative even when the spec was unreadable
	if ev.Connection == "" {
		ev.Connection = id
	}
	if err := c.publisher.Publish(ctx, ev); err != nil {
		return fmt.Errorf("deletion of %s: %w", id, err)
	}
	c.metrics.StatusPublished(string(ev.Phase))
	if err := Release(ctx, c.client, cm); err != nil {
		// A conflict (the record changed since the version published) is
		// requeued quietly by the worker: the next sync decides again on
		// the newer version; the event is already in the stream and its
		// re-publish is deduplicated.
		return fmt.Errorf("release record %s after its Deleted event: %w", id, err)
	}
	c.log.Info().Str("objectId", id).Str("connection", ev.Connection).Str("requestId", ev.RequestID).
		Int64("seq", ev.Seq).Msg("published deletion and released the record")
	return nil
}

// Release removes record.Finalizer from the record cm is a version of,
// and nothing else: a JSON merge patch of metadata.finalizers (cm's others,
// as that version lists them) that carries cm's resourceVersion, which
// the API server takes as a precondition. A record changed since cm
// (another finalizer added or removed, any write) is left as it is and
// the patch fails with a Conflict (apierrors.IsConflict), so a release
// never applies to a version nobody decided on, and it never writes the
// record's data: the cached cm need not hold it. A record gone already is
// released.
func Release(ctx context.Context, client kubernetes.Interface, cm *corev1.ConfigMap) error {
	patch, err := json.Marshal(releasePatch{Metadata: releaseMeta{
		ResourceVersion: cm.ResourceVersion, Finalizers: record.WithoutFinalizer(cm)}})
	if err != nil {
		return fmt.Errorf("release patch: %w", err)
	}
	_, err = client.CoreV1().ConfigMaps(cm.Namespace).Patch(ctx, cm.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: connection.FieldManager})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patch finalizers of %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return nil
}

// releasePatch is Release's merge patch. Finalizers is never omitted: the
// list it carries replaces the record's, and null (none left) removes it.
type releasePatch struct {
	Metadata releaseMeta `json:"metadata"`
}

type releaseMeta struct {
	ResourceVersion string   `json:"resourceVersion"`
	Finalizers      []string `json:"finalizers"`
}
