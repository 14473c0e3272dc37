package launcher

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/kube/record"
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
// sees only connection records (launcher, statuswatch and drift share it).
func NewRecordsFactory(client kubernetes.Interface, namespace string, resync time.Duration) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(client, resync,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = record.Selector
		}))
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
