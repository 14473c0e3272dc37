package recordcache

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// Cache holds the latest version of each record its informer stores, and
// the one before, decoded once.
//
// It is filled by index functions, which the informer's indexer calls for
// every version it stores, in order and before any event handler or lister
// sees that version: on an add the new version, on an update the version
// replaced (held already) and then the new one, on a delete the version
// removed. Lookups from workers and handlers therefore hit it. A record is
// dropped when its Deleted event arrives.
//
// An informer whose transform attaches each version's summary to the
// object it caches (Attach; the leader's records informer,
// launcher.RecordForCache) caches no record data to decode: the cache
// then reads the attached summaries and holds nothing of its own.
type Cache struct {
	decode func(*corev1.ConfigMap) (connection.Connection, error)
	log    zerolog.Logger

	decodes atomic.Int64

	mu    sync.Mutex
	byUID map[types.UID]versions
}

// versions is a record's newest version and the one before: on an update
// the indexer files the old version out of each index before it files the
// new one in, and an update handler compares both. A record not updated
// this term has no previous version and holds no room for one.
type versions struct {
	current, previous *Version
}

// indexes numbers the caches' own index names: the informer refuses a
// second index of the same name, and two controllers that were not handed
// one shared Cache build one each.
var indexes atomic.Int64

// New returns a Cache fed by inf's indexer. It registers an index (that
// files nothing) so that every version is seen even when no other index
// asks, and a handler that drops deleted records. Call it before inf
// starts. One Cache per informer is enough for every controller on it:
// hand the same one to each (their Deps), so each version is decoded once.
func New(inf cache.SharedIndexInformer, log zerolog.Logger) (*Cache, error) {
	c := &Cache{decode: record.Decode, log: log, byUID: map[types.UID]versions{}}
	name := fmt.Sprintf("recordcache.sc-extension.io/versions-%d", indexes.Add(1))
	if err := inf.AddIndexers(cache.Indexers{name: c.IndexFunc(func(*corev1.ConfigMap, Version) []string { return nil })}); err != nil {
		return nil, fmt.Errorf("recordcache: add index: %w", err)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.deleted}); err != nil {
		return nil, fmt.Errorf("recordcache: watch deletions: %w", err)
	}
	return c, nil
}

// IndexFunc turns keys into an index function for the records informer
// that observes each version it is called with: keys gets that version
// decoded, once for all the indexes built this way. A version that does
// not decode is passed with its Err set. The returned function never
// fails, since an index function's error makes the informer panic.
func (c *Cache) IndexFunc(keys func(*corev1.ConfigMap, Version) []string) cache.IndexFunc {
	return func(obj any) ([]string, error) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return nil, nil
		}
		return keys(cm, c.observe(cm)), nil
	}
}

// Get returns cm's version for a worker or a handler: the summary attached
// to it (Attach), or the one held for it. A miss (an update handler running
// after two newer versions were stored, or a record deleted meanwhile) is
// decoded again but neither kept, since it may be older than what is held,
// nor logged again.
func (c *Cache) Get(cm *corev1.ConfigMap) Version {
	if v, ok := Attached(cm); ok {
		return v
	}
	if v, ok := c.cached(cm); ok {
		return v
	}
	conn, err := c.decodeCounted(cm)
	return newVersion(cm, conn, err)
}

// Len is how many records the cache holds summaries of; summaries
// attached to the informer's objects are theirs, not the cache's.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byUID)
}

// Decodes is how many record versions the cache has decoded so far; a
// version with a summary attached is not the cache's to decode.
func (c *Cache) Decodes() int64 { return c.decodes.Load() }

func (c *Cache) cached(cm *corev1.ConfigMap) (Version, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.byUID[cm.UID]
	for _, held := range []*Version{v.current, v.previous} {
		if held != nil && held.ResourceVersion == cm.ResourceVersion {
			return *held, true
		}
	}
	return Version{}, false
}

// observe is the index functions' way in: cm is the newest version of its
// record the indexer stores, or the version it replaces or removes, which
// is held already (or has its summary attached: then the cache holds
// nothing of its own).
func (c *Cache) observe(cm *corev1.ConfigMap) Version {
	if e := lookup(cm); e != nil {
		if e.v.Err != nil && e.logged.CompareAndSwap(false, true) {
			c.warn(cm, e.v.Err)
		}
		return e.v
	}
	if v, ok := c.cached(cm); ok {
		return v
	}
	conn, err := c.decodeCounted(cm)
	if err != nil {
		c.warn(cm, err)
	}
	v := newVersion(cm, conn, err)
	c.mu.Lock()
	defer c.mu.Unlock()
	vs := c.byUID[cm.UID]
	c.byUID[cm.UID] = versions{current: &v, previous: vs.current}
	return v
}

// warn logs a version that does not decode, once per version.
func (c *Cache) warn(cm *corev1.ConfigMap, err error) {
	log := c.log.Warn().Err(err).Str("objectId", record.ID(cm)).Str("configMap", cm.Name).Str("resourceVersion", cm.ResourceVersion)
	if errors.Is(err, record.ErrUnsupportedVersion) {
		log.Msg("skipping a record written by a newer release")
	} else {
		log.Msg("skipping undecodable record")
	}
}

func (c *Cache) decodeCounted(cm *corev1.ConfigMap) (connection.Connection, error) {
	c.decodes.Add(1)
	return c.decode(cm)
}

func (c *Cache) deleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byUID, cm.UID)
}
