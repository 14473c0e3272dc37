package drift

import (
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// Scope narrows what is watched: the chart's watchNamespaces and
// deniedNamespaces.
type Scope struct {
	// Watch, if not empty, lists the only namespaces watched.
	Watch []string
	// Denied namespaces are never watched.
	Denied []string
}

// Allows reports whether objects in ns are watched.
func (s Scope) Allows(ns string) bool {
	for _, d := range s.Denied {
		if d == ns {
			return false
		}
	}
	if len(s.Watch) == 0 {
		return true
	}
	for _, w := range s.Watch {
		if w == ns {
			return true
		}
	}
	return false
}

// NewFactories returns the informer factories drift watches through: one
// per watched namespace, or one for all namespaces. Every list and watch is
// narrowed on the server to objects labelled managed-by sc-extension, and
// denied namespaces are excluded by field selector, so the agent caches
// only what sc-job rendered.
func NewFactories(client kubernetes.Interface, scope Scope, resync time.Duration) []informers.SharedInformerFactory {
	tweak := func(o *metav1.ListOptions) {
		o.LabelSelector = connection.LabelManagedBy + "=" + connection.ManagedByValue
		var fs []string
		for _, d := range scope.Denied {
			fs = append(fs, "metadata.namespace!="+d)
		}
		o.FieldSelector = strings.Join(fs, ",")
	}
	if len(scope.Watch) == 0 {
		return []informers.SharedInformerFactory{
			informers.NewSharedInformerFactoryWithOptions(client, resync, informers.WithTweakListOptions(tweak)),
		}
	}
	var out []informers.SharedInformerFactory
	for _, ns := range scope.Watch {
		if !scope.Allows(ns) {
			continue
		}
		out = append(out, informers.NewSharedInformerFactoryWithOptions(client, resync,
			informers.WithNamespace(ns), informers.WithTweakListOptions(tweak)))
	}
	return out
}
