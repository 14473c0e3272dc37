package drift

import (
	"errors"
	"sync"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// ClaimsIndex names drift's index on the records informer: each record is
// filed under every Secret and ServiceAccount its status lists, as
// objectKey.String() ("Secret team-a/sc-x-secret"), whatever its phase. An
// event on a rendered object then finds the records claiming it with one
// map lookup instead of decoding every record.
const ClaimsIndex = "drift.sc-extension.io/claims"

// decoded is one version of one record as drift keeps it: what drift
// decides on (phase, pending deletion, the claimed objects and their UIDs)
// and the name it logs, or why it could not be decoded. A record's spec
// and request history stay in the informer's ConfigMap only.
type decoded struct {
	resourceVersion string
	err             error
	name            string
	phase           connection.Phase
	deleting        bool
	resources       []connection.ResourceRef
	owned           []connection.OwnedObject
}

func newDecoded(rv string, c connection.Connection, err error) decoded {
	return decoded{resourceVersion: rv, err: err, name: c.Spec.Name, phase: c.Status.Phase, deleting: c.Deletion != nil,
		resources: c.Status.Resources, owned: c.Status.Owned}
}

// conn is the connection as far as d knows it: enough for NotOurs and for
// queueing its objects.
func (d decoded) conn() connection.Connection {
	var c connection.Connection
	c.Spec.Name = d.name
	c.Status.Phase, c.Status.Resources, c.Status.Owned = d.phase, d.resources, d.owned
	if d.deleting {
		c.Deletion = &connection.Deletion{}
	}
	return c
}

// recordVersions holds the latest version of a record the index saw and
// the one before: on an update the indexer files the old object out
// before it files the new one in, and the update handler compares both.
type recordVersions struct {
	current, previous decoded
}

// decodeCache decodes each version of each record once. It is filled by the
// index function, which the informer calls for every version it stores,
// in order, before any handler or lister sees that version; lookups from
// the worker and the handlers therefore hit it. A version that fails to
// decode is logged when it is first seen, once.
type decodeCache struct {
	decode func(*corev1.ConfigMap) (connection.Connection, error)
	log    zerolog.Logger

	mu    sync.Mutex
	byUID map[types.UID]*recordVersions
}

func newDecodeCache(log zerolog.Logger) *decodeCache {
	return &decodeCache{decode: record.Decode, log: log, byUID: map[types.UID]*recordVersions{}}
}

// cached returns cm's version if it is held.
func (d *decodeCache) cached(cm *corev1.ConfigMap) (decoded, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.byUID[cm.UID]
	switch {
	case !ok:
		return decoded{}, false
	case v.current.resourceVersion == cm.ResourceVersion:
		return v.current, true
	case v.previous.resourceVersion == cm.ResourceVersion:
		return v.previous, true
	}
	return decoded{}, false
}

// observe is the index function's way in: cm is the newest version of its
// record the informer stores (or, on an update or delete, the version it
// replaces, which is held already).
func (d *decodeCache) observe(cm *corev1.ConfigMap) decoded {
	if v, ok := d.cached(cm); ok {
		return v
	}
	v := d.decodeOne(cm)
	d.mu.Lock()
	defer d.mu.Unlock()
	vs := d.byUID[cm.UID]
	if vs == nil {
		vs = &recordVersions{}
		d.byUID[cm.UID] = vs
	}
	vs.previous, vs.current = vs.current, v
	return v
}

// lookup returns cm's decoded version for the worker and the handlers. A
// miss (an update handler running after two newer versions were stored)
// is decoded again but not kept, since it may be older than what is held,
// and not logged again; a record the cache does not hold at all is kept.
func (d *decodeCache) lookup(cm *corev1.ConfigMap) decoded {
	if v, ok := d.cached(cm); ok {
		return v
	}
	d.mu.Lock()
	_, held := d.byUID[cm.UID]
	d.mu.Unlock()
	if !held {
		return d.observe(cm)
	}
	conn, err := d.decode(cm)
	return newDecoded(cm.ResourceVersion, conn, err)
}

// forget drops a deleted record.
func (d *decodeCache) forget(uid types.UID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.byUID, uid)
}

// len is how many records the cache holds.
func (d *decodeCache) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.byUID)
}

func (d *decodeCache) decodeOne(cm *corev1.ConfigMap) decoded {
	conn, err := d.decode(cm)
	if err != nil {
		log := d.log.Warn().Err(err).Str("objectId", record.ID(cm)).Str("resourceVersion", cm.ResourceVersion)
		if errors.Is(err, record.ErrUnsupportedVersion) {
			log.Msg("skipping record written by a newer release")
		} else {
			log.Msg("skipping undecodable record")
		}
	}
	return newDecoded(cm.ResourceVersion, conn, err)
}

// claimKeys is ClaimsIndex's index function. It never fails: an error
// would make the informer panic, and an undecodable record claims nothing.
func (d *decodeCache) claimKeys(obj any) ([]string, error) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return nil, nil
	}
	v := d.observe(cm)
	if v.err != nil {
		return nil, nil
	}
	var keys []string
	for _, r := range v.resources {
		if r.Kind == KindSecret || r.Kind == KindServiceAccount {
			keys = append(keys, objectKey{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}.String())
		}
	}
	return keys, nil
}

// addClaimsIndex registers ClaimsIndex on the records informer. One drift
// controller per informer: the index and its decode cache belong together.
func addClaimsIndex(inf cache.SharedIndexInformer, d *decodeCache) error {
	return inf.AddIndexers(cache.Indexers{ClaimsIndex: d.claimKeys})
}
