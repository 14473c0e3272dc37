package launcher

import (
	"time"

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
