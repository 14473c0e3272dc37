package store

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// WithAbsence returns a copy of s whose Apply creates a connection absent
// says has no record without reading first: two API calls (credential
// Secret, record) instead of four. absent may be wrong only towards
// "absent" for a record that exists (a cache behind the API server): the
// blind create then meets AlreadyExists and Apply falls back to reading,
// so a wrong answer costs calls, never correctness. It must answer false
// when it does not know.
func (s *Store) WithAbsence(absent func(id string) bool) *Store {
	c := *s
	c.absent = absent
	return &c
}

// AbsentFromCache is an absence predicate over an informer's cache of the
// records in the store's namespace: a connection is absent once the cache
// has synced and holds no record of it. A record the cache has not seen yet
// is exactly the stale case WithAbsence tolerates.
func AbsentFromCache(records corelisters.ConfigMapNamespaceLister, synced cache.InformerSynced) func(id string) bool {
	return func(id string) bool {
		if !synced() {
			return false
		}
		_, err := records.Get(connection.ConfigMapName(id))
		return apierrors.IsNotFound(err)
	}
}
