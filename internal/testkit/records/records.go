// Package records builds connection record ConfigMaps with the real
// pkg/kube/record codec, and fills or starts the informers controller tests
// read them through, so that every controller test sees records exactly as
// pkg/kube/store writes them.
package records

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// Namespace is the agent's namespace in controller tests.
const Namespace = "sc-system"

// Connection is a connection named name in scope team-a, in phase at
// generation gen, as far as controllers care.
func Connection(name string, phase connection.Phase, gen int64) connection.Connection {
	return connection.Connection{
		Spec:       connection.Spec{Name: name, Scope: "team-a"},
		Generation: gen,
		Status:     connection.Status{Phase: phase, ObservedGeneration: gen},
	}
}

// ConfigMap is c's record in Namespace, encoded by pkg/kube/record, with
// the UID uid-<id> and resourceVersion "1" an API server would have given it.
func ConfigMap(t testing.TB, c connection.Connection) *corev1.ConfigMap {
	t.Helper()
	cm, err := record.New(Namespace, c)
	require.NoError(t, err)
	cm.UID = types.UID("uid-" + c.Spec.ID())
	cm.ResourceVersion = "1"
	return cm
}

// Index puts objects straight into factory's informer indexers without
// starting the informers (sample-controller style), so the fake client
// records only the controller's own actions. The informers must already be
// registered, which a controller's New does.
func Index(t testing.TB, factory informers.SharedInformerFactory, objs ...runtime.Object) {
	t.Helper()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.ConfigMap:
			err = factory.Core().V1().ConfigMaps().Informer().GetIndexer().Add(o)
		case *corev1.Secret:
			err = factory.Core().V1().Secrets().Informer().GetIndexer().Add(o)
		case *corev1.ServiceAccount:
			err = factory.Core().V1().ServiceAccounts().Informer().GetIndexer().Add(o)
		case *batchv1.Job:
			err = factory.Batch().V1().Jobs().Informer().GetIndexer().Add(o)
		default:
			t.Fatalf("records.Index: no informer for %T", o)
		}
		require.NoError(t, err)
	}
}

// Start starts factories on client and returns once watches watches are
// established: the fake API server does not replay changes made between
// an informer's list and its watch, so a test changing objects earlier
// would race the informer. stop ends the informers; the caller shuts the
// factories down after it.
func Start(t testing.TB, client *fake.Clientset, watches int, stop <-chan struct{}, factories ...informers.SharedInformerFactory) {
	t.Helper()
	watching := make(chan string, watches)
	client.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := client.Tracker().Watch(a.GetResource(), a.GetNamespace())
		if err != nil {
			return false, nil, err
		}
		select {
		case watching <- a.GetResource().Resource:
		default: // a re-watch after the test stopped counting
		}
		return true, w, nil
	})
	for _, f := range factories {
		f.Start(stop)
	}
	for range watches {
		select {
		case <-watching:
		case <-time.After(10 * time.Second):
			t.Fatal("informers did not start watching")
		}
	}
}
