package recordcache

import (
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	corev1 "k8s.io/api/core/v1"

	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// attached holds the summary Attach gave each cached record object, for
// as long as that object lives: it is a field the ConfigMap type does not
// have. Keyed by a weak pointer, it keeps no object alive, and each entry
// goes when its object is collected; until then every holder of the
// object (the indexer, an update handler running late, a delete handler
// with a record's final state) finds its summary, which a cache of the
// newest versions by UID could not promise.
var attached = struct {
	sync.Mutex
	m map[weak.Pointer[corev1.ConfigMap]]*entry
}{m: map[weak.Pointer[corev1.ConfigMap]]*entry{}}

// entry is an attached summary; logged: a Cache has warned that the
// version does not decode, which each version deserves once.
type entry struct {
	v      Version
	logged atomic.Bool
}

// Attach decodes full, a record version as the API server sent it, and
// attaches its summary to cached, the copy of it the records informer
// stores (its transform, launcher.RecordForCache), so that cached need not
// keep the record's data: every Cache reads the summary of an object
// with one attached instead of decoding the object. full is not modified.
// A full that has a summary attached already (the transform given an
// object it returned before) lends cached that summary.
func Attach(cached, full *corev1.ConfigMap) {
	e := lookup(full)
	if e == nil {
		conn, err := record.Decode(full)
		// full's annotations, which cached need not keep: the summary
		// shares the name's string with them, and holds it if the
		// record does not decode.
		e = &entry{v: newVersion(full, conn, err)}
	}
	key := weak.Make(cached)
	attached.Lock()
	attached.m[key] = e
	attached.Unlock()
	runtime.AddCleanup(cached, detach, key)
}

// Attached is the summary attached to cm, if any.
func Attached(cm *corev1.ConfigMap) (Version, bool) {
	if e := lookup(cm); e != nil {
		return e.v, true
	}
	return Version{}, false
}

func lookup(cm *corev1.ConfigMap) *entry {
	key := weak.Make(cm)
	attached.Lock()
	defer attached.Unlock()
	return attached.m[key]
}

func detach(key weak.Pointer[corev1.ConfigMap]) {
	attached.Lock()
	defer attached.Unlock()
	delete(attached.m, key)
}
