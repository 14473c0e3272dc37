package query

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unique"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// ErrNotSynced: the cache has not finished its first list yet.
var ErrNotSynced = errors.New("the agent's record cache has not synced yet; retry")

// Cache answers list from an informer on the record ConfigMaps, so that a
// list costs the API server nothing. The
// informer keeps, per record, only its identity and its entry (the encoded
// view), decoded once per resourceVersion: a relist hands over the same
// versions again and they are not decoded again.
type Cache struct {
	informer cache.SharedIndexInformer
	factory  informers.SharedInformerFactory
	log      zerolog.Logger
	synced   chan struct{}

	// changes counts the informer's events; a Snapshot is rebuilt only
	// when it moved.
	changes atomic.Uint64
	mu      sync.Mutex
	snap    *Snapshot
	snapAt  uint64
	// decodes counts record decodes (a test proves the memo by it).
	decodes atomic.Int64
}

// NewCache registers the record informer on factory and makes it keep
// compact entries instead of ConfigMaps. The factory must list the record
// ConfigMaps (launcher.NewRecordsFactory) and is the cache's alone: its
// ConfigMap informer no longer holds ConfigMaps.
func NewCache(factory informers.SharedInformerFactory, log zerolog.Logger) (*Cache, error) {
	c := &Cache{factory: factory, informer: factory.Core().V1().ConfigMaps().Informer(),
		log: log.With().Str("controller", ControllerName).Logger(), synced: make(chan struct{})}
	if err := c.informer.SetTransform(c.compact); err != nil {
		return nil, fmt.Errorf("query cache: %w", err)
	}
	bump := func(any) { c.changes.Add(1) }
	if _, err := c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: bump, DeleteFunc: bump, UpdateFunc: func(_, o any) { bump(o) },
	}); err != nil {
		return nil, fmt.Errorf("query cache: %w", err)
	}
	return c, nil
}

// Run fills the cache and keeps it current until ctx ends.
func (c *Cache) Run(ctx context.Context) error {
	c.factory.Start(ctx.Done())
	defer c.factory.Shutdown()
	if cache.WaitForCacheSync(ctx.Done(), c.informer.HasSynced) {
		close(c.synced)
		c.log.Info().Int("records", len(c.informer.GetIndexer().ListKeys())).Msg("record cache synced")
	}
	<-ctx.Done()
	return nil
}

// Synced tells whether the first list is in: the replica can answer.
func (c *Cache) Synced() bool {
	select {
	case <-c.synced:
		return true
	default:
		return false
	}
}

func (c *Cache) wait(ctx context.Context) error {
	select {
	case <-c.synced:
		return nil
	case <-ctx.Done():
		return ErrNotSynced
	}
}

// Snapshot is every record, ordered by name. It is rebuilt only after a
// change, and shared by the queries that read it meanwhile.
func (c *Cache) Snapshot(ctx context.Context) (*Snapshot, error) {
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Read before listing: a change during the list is rebuilt next time.
	at := c.changes.Load()
	if c.snap != nil && c.snapAt == at {
		return c.snap, nil
	}
	objs := c.informer.GetIndexer().List()
	entries := make([]*entry, 0, len(objs))
	for _, o := range objs {
		if r, ok := o.(*compactRecord); ok && r.entry != nil {
			entries = append(entries, r.entry)
		}
	}
	c.snap, c.snapAt = newSnapshot(entries), at
	return c.snap, nil
}

// compact is the informer's transform: a record ConfigMap becomes its
// compactRecord. A version already held (same UID and resourceVersion, as
// a relist delivers) reuses the held entry instead of decoding again.
func (c *Cache) compact(obj any) (any, error) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return obj, nil // already compact (the transform must be idempotent)
	}
	r := &compactRecord{name: cm.Name, namespace: unique.Make(cm.Namespace).Value(), uid: cm.UID, resourceVersion: cm.ResourceVersion}
	if held, ok, _ := c.informer.GetIndexer().GetByKey(cm.Namespace + "/" + cm.Name); ok {
		if h, ok := held.(*compactRecord); ok && h.uid == cm.UID && h.resourceVersion == cm.ResourceVersion && cm.ResourceVersion != "" {
			return h, nil
		}
	}
	switch {
	case !record.IsRecord(cm):
		// labelled like a record, named otherwise: not a connection (as
		// the store's List has it); held only so that deletes match
	case record.Terminating(cm):
		// removed, waiting for its Deleted status event: not listed
	default:
		c.decodes.Add(1)
		conn, err := record.Decode(cm)
		if err == nil {
			r.entry, err = newEntry(conn)
		}
		if err == nil {
			r.entry.share(r.name)
		}
		if err != nil {
			r.entry = failedEntry(cm.Annotations[connection.AnnotationConnectionName], record.ID(cm), err)
			c.log.Warn().Err(err).Str("configmap", cm.Name).Msg("record cannot be read; lists report it")
		}
	}
	return r, nil
}

// compactRecord is what the informer holds of a record ConfigMap: enough
// identity for the informer's bookkeeping, and the entry queries answer.
// It holds the four strings of identity rather than a metav1.ObjectMeta,
// which is some 250 bytes per record whatever it holds; client-go reads
// the identity through GetObjectMeta (meta.Accessor).
type compactRecord struct {
	name, namespace, resourceVersion string
	uid                              types.UID
	entry                            *entry // nil for a ConfigMap that is not listed
}

// GetObjectMeta makes it a metav1.ObjectMetaAccessor, which is how the
// informer's key function and client-go's bookkeeping read an object's
// identity. The ObjectMeta is built per call: nothing keeps it.
func (r *compactRecord) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Name: r.name, Namespace: r.namespace, UID: r.uid, ResourceVersion: r.resourceVersion}
}

// GetObjectKind and DeepCopyObject make it a runtime.Object for client-go's
// optional checks; it is never modified once built, so a copy may share it.
func (r *compactRecord) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (r *compactRecord) DeepCopyObject() runtime.Object { c := *r; return &c }

// share makes e hold the strings every record repeats once for the process
// (the namespace), and its id as part of its ConfigMap's name, which the
// informer holds anyway (connection.ConfigMapName).
func (e *entry) share(configMapName string) {
	e.namespace = unique.Make(e.namespace).Value()
	if configMapName == connection.ConfigMapName(e.id) {
		e.id = configMapName[len(configMapName)-len(e.id):]
	}
}
