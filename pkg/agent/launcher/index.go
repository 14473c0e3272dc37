package launcher

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
)

// The launcher's indexes on the records informer. The indexer updates them
// as each record version is stored (decoded once, by recordcache), so a
// sync reads the records sc-job has work for, and a namespace that appears
// reads the records parked on it, instead of decoding every record.
const (
	// WorkIndex files each record sc-job has work for (connection.DueAt)
	// under WorkDue when it is due whatever the time, or under WorkWaiting
	// when it waits out a backoff or a parking. Settled, terminating and
	// undecodable records are not filed.
	WorkIndex = "launcher.sc-extension.io/work"
	// ParkedIndex files each record parked on its missing target namespace
	// under that namespace's name.
	ParkedIndex = "launcher.sc-extension.io/parked"
)

// WorkIndex's values.
const (
	WorkDue     = "due"
	WorkWaiting = "waiting"
)

func workKeys(cm *corev1.ConfigMap, v recordcache.Version) []string {
	switch {
	case v.Err != nil, !v.HasWork:
		return nil
	case record.Terminating(cm):
		// Removed: only its Deleted event is owed (statuswatch), and
		// sc-job's store skips it.
		return nil
	case v.DueAt.IsZero():
		return []string{WorkDue}
	}
	return []string{WorkWaiting}
}

func parkedKeys(_ *corev1.ConfigMap, v recordcache.Version) []string {
	if !v.Parked() {
		return nil
	}
	return []string{v.Scope}
}

// addIndexes registers WorkIndex and ParkedIndex on the records informer:
// one launcher per informer.
func addIndexes(inf cache.SharedIndexInformer, versions *recordcache.Cache) error {
	return inf.AddIndexers(cache.Indexers{
		WorkIndex:   versions.IndexFunc(workKeys),
		ParkedIndex: versions.IndexFunc(parkedKeys),
	})
}
