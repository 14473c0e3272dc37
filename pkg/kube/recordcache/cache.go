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

// Get returns cm's version for a worker or a handler. A miss (an update
// handler running after two newer versions were stored, or a record deleted
// meanwhile) is decoded again but neither kept, since it may be older than
// what is held, nor logged again.
func (c *Cache) Get(cm *corev1.ConfigMap) Version {
	if v, ok := c.cached(cm); ok {
		return v
	}
	conn, err := c.decodeCounted(cm)
	return newVersion(cm, conn, err)
}

// Len is how many records the cache holds.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byUID)
}

// Decodes is how many record versions the cache has decoded so far.
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
// is held already.
func (c *Cache) observe(cm *corev1.ConfigMap) Version {
	if v, ok := c.cached(cm); ok {
		return v
	}
	conn, err := c.decodeCounted(cm)
	if err != nil {
		log := c.log.Warn().Err(err).Str("objectId", record.ID(cm)).Str("configMap", cm.Name).Str("resourceVersion", cm.ResourceVersion)
		if errors.Is(err, record.ErrUnsupportedVersion) {
			log.Msg("skipping a record written by a newer release")
		} else {
			log.Msg("skipping undecodable record")
		}
	}
	v := newVersion(cm, conn, err)
	c.mu.Lock()
	defer c.mu.Unlock()
	vs := c.byUID[cm.UID]
	c.byUID[cm.UID] = versions{current: &v, previous: vs.current}
	return v
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
