package launcher

import (
	"time"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
)

// NewJobsFactory returns an informer factory whose Job informer sees only
// the one Job the launcher manages: the agent never caches other Jobs.
func NewJobsFactory(client kubernetes.Interface, namespace, jobName string, resync time.Duration) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(client, resync,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", jobName).String()
		}))
}

// NewRecordsFactory returns an informer factory whose ConfigMap informer
// sees only connection records (launcher, statuswatch and drift share it)
// and caches them as RecordForCache keeps them. query.NewCache replaces
// that transform with its own on the factory it is given.
func NewRecordsFactory(client kubernetes.Interface, namespace string, resync time.Duration) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(client, resync,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = record.Selector
		}),
		informers.WithTransform(RecordForCache))
}

// RecordForCache is the records informer's transform: the record's
// metadata as the API server sent it, less its managedFields, and none of
// its data. The data is decoded here, once per version, into the summary
// the leader's readers decide and publish from (recordcache.Version),
// which is attached to the returned object for as long as it lives
// (recordcache.Attach); recordcache.Cache reads it from there. The strings
// every record repeats (namespace, label keys, the managed-by value,
// finalizers) are shared by all records instead of held once each;
// values unique to a record are not interned: the intern table would hold
// one more entry for each.
//
// What stays is what something reads: name, namespace, UID and labels
// (identity, record.IsRecord, the selectors, the intake's absence check,
// the heartbeat's count, Events about the record), the resourceVersion
// (recordcache, and the precondition of statuswatch's release), the
// finalizers and deletion timestamp (statuswatch's release of a removed
// record, a patch of metadata.finalizers alone: no write of the agent
// sends a cached record back whole). The annotations go with the data:
// the one a record carries, its connection's name, is in the summary,
// even when the record does not decode. managedFields are nobody's.
// The object the reflector decoded is not modified; a new one is returned,
// and an object this transform returned before is returned as it is.
func RecordForCache(obj any) (any, error) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return obj, nil // a DeletedFinalStateUnknown tombstone is left as it is
	}
	if _, done := recordcache.Attached(cm); done {
		return cm, nil
	}
	out := &corev1.ConfigMap{TypeMeta: cm.TypeMeta, ObjectMeta: cm.ObjectMeta, Immutable: cm.Immutable}
	out.ManagedFields, out.Annotations = nil, nil
	out.Namespace = intern(cm.Namespace)
	out.Labels = internKeys(cm.Labels)
	if v, ok := out.Labels[connection.LabelManagedBy]; ok {
		out.Labels[connection.LabelManagedBy] = intern(v)
	}
	if cm.Finalizers != nil {
		out.Finalizers = make([]string, len(cm.Finalizers))
		for i, f := range cm.Finalizers {
			out.Finalizers[i] = intern(f)
		}
	}
	recordcache.Attach(out, cm)
	return out, nil
}

// intern is s held once for the process: record keys and label values
// repeat in every record.
func intern(s string) string { return unique.Make(s).Value() }

// internKeys is m with interned keys, or nil if m is nil.
func internKeys(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[intern(k)] = v
	}
	return out
}

// NewNamespacesFactory returns a cluster-wide informer factory for the
// namespace wake. Its Namespace informer keeps only what the wake reads
// (name, UID, resourceVersion, creation and deletion timestamps): the
// agent caches no labels, annotations, spec or status of tenant namespaces.
func NewNamespacesFactory(client kubernetes.Interface, resync time.Duration) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(client, resync, informers.WithTransform(namespaceMetadata))
}

// namespaceMetadata is the Namespace informer's transform.
func namespaceMetadata(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil // a DeletedFinalStateUnknown tombstone is left as it is
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:              ns.Name,
		UID:               ns.UID,
		ResourceVersion:   ns.ResourceVersion,
		CreationTimestamp: ns.CreationTimestamp,
		DeletionTimestamp: ns.DeletionTimestamp,
	}}, nil
}
