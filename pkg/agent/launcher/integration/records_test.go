//go:build integration

package launcher_integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	connrecord "github.com/sc-extension/sc-extension/pkg/kube/record"
)

// The records informer caches records without managedFields, and an
// Update of such a cached record (statuswatch releasing its finalizer
// writes the whole cached object back) leaves the API server's
// managedFields and every data key in place: the API server keeps the
// managedFields of an object whose update carries none.
func TestCachedRecordWithoutManagedFieldsUpdatesCleanly(t *testing.T) {
	e := setup(t)
	c := connection.Connection{Spec: connection.Spec{Name: "mf-conn", Scope: "default"}, Generation: 1,
		Status:           connection.Status{Phase: connection.PhaseSucceeded, LastRequestID: "r1"},
		RecentRequestIDs: []string{"r1"}}
	cm, err := connrecord.New(e.ns, c)
	require.NoError(t, err)
	// A second finalizer keeps the record, once released, to be looked at.
	cm.Finalizers = append(cm.Finalizers, "example.com/hold")
	_, err = e.client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, metav1.CreateOptions{FieldManager: connection.FieldManager})
	require.NoError(t, err)

	factory := launcher.NewRecordsFactory(e.client, e.ns, 0)
	records := factory.Core().V1().ConfigMaps()
	records.Informer()
	ctx, cancel := context.WithCancel(e.ctx)
	factory.Start(ctx.Done())
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	require.True(t, cache.WaitForCacheSync(ctx.Done(), records.Informer().HasSynced))
	cached, err := records.Lister().ConfigMaps(e.ns).Get(cm.Name)
	require.NoError(t, err)
	assert.Nil(t, cached.ManagedFields, "not cached")

	require.NoError(t, e.client.CoreV1().ConfigMaps(e.ns).Delete(e.ctx, cm.Name, metav1.DeleteOptions{}))
	var terminating *corev1.ConfigMap
	require.Eventually(t, func() bool {
		terminating, err = records.Lister().ConfigMaps(e.ns).Get(cm.Name)
		return err == nil && connrecord.Terminating(terminating)
	}, 30*time.Second, 20*time.Millisecond, "the informer sees the record terminating")
	require.Nil(t, terminating.ManagedFields)

	// As statuswatch's finish does.
	released := terminating.DeepCopy()
	released.Finalizers = connrecord.WithoutFinalizer(terminating)
	_, err = e.client.CoreV1().ConfigMaps(e.ns).Update(e.ctx, released, metav1.UpdateOptions{FieldManager: connection.FieldManager})
	require.NoError(t, err)
	t.Cleanup(func() {
		got, err := e.client.CoreV1().ConfigMaps(e.ns).Get(e.ctx, cm.Name, metav1.GetOptions{})
		if err == nil {
			got.Finalizers = nil
			_, _ = e.client.CoreV1().ConfigMaps(e.ns).Update(e.ctx, got, metav1.UpdateOptions{})
		}
	})

	got, err := e.client.CoreV1().ConfigMaps(e.ns).Get(e.ctx, cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"example.com/hold"}, got.Finalizers)
	assert.Equal(t, cm.Data, got.Data, "every data key kept")
	require.NotEmpty(t, got.ManagedFields, "the API server kept its managedFields")
	var managers []string
	for _, m := range got.ManagedFields {
		managers = append(managers, m.Manager)
	}
	assert.Contains(t, managers, connection.FieldManager)
	back, err := connrecord.Decode(got)
	require.NoError(t, err)
	assert.Equal(t, c.RecentRequestIDs, back.RecentRequestIDs)
}
