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
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
)

// The records informer caches records from the API server's list and
// watch without managedFields or data, each version with its summary
// attached: the one listed, the one a watch event brings, and the final
// state of a deleted record, which its delete handlers are handed.
// (statuswatch/integration proves that releasing such a cached record
// keeps its data.)
func TestRecordsAreCachedAsSummaries(t *testing.T) {
	e := setup(t)
	c := connection.Connection{Spec: connection.Spec{Name: "sum-conn", Scope: "default"}, Generation: 1,
		Status:           connection.Status{Phase: connection.PhasePending, LastRequestID: "r1"},
		RecentRequestIDs: []string{"r1"}}
	cm, err := connrecord.New(e.ns, c)
	require.NoError(t, err)
	cm.Finalizers = nil // deleted without passing terminating: a record of an older release
	_, err = e.client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, metav1.CreateOptions{FieldManager: connection.FieldManager})
	require.NoError(t, err)

	factory := launcher.NewRecordsFactory(e.client, e.ns, 0)
	records := factory.Core().V1().ConfigMaps()
	deleted := make(chan *corev1.ConfigMap, 1)
	_, err = records.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			deleted <- cm
		}
	}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(e.ctx)
	factory.Start(ctx.Done())
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	require.True(t, cache.WaitForCacheSync(ctx.Done(), records.Informer().HasSynced))

	summary := func(cm *corev1.ConfigMap) recordcache.Version {
		t.Helper()
		assert.Nil(t, cm.ManagedFields)
		assert.Nil(t, cm.Data)
		v, ok := recordcache.Attached(cm)
		require.True(t, ok, "summary attached")
		require.NoError(t, v.Err)
		assert.Equal(t, cm.ResourceVersion, v.ResourceVersion)
		return v
	}
	listed, err := records.Lister().ConfigMaps(e.ns).Get(cm.Name)
	require.NoError(t, err)
	assert.Equal(t, connection.PhasePending, summary(listed).Phase)

	c.Status.Phase, c.Status.Message = connection.PhaseSucceeded, "rendered 0 objects"
	cur, err := e.client.CoreV1().ConfigMaps(e.ns).Get(e.ctx, cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, connrecord.Encode(cur, c))
	cur.Finalizers = nil
	updated, err := e.client.CoreV1().ConfigMaps(e.ns).Update(e.ctx, cur, metav1.UpdateOptions{FieldManager: connection.FieldManager})
	require.NoError(t, err)
	var watched *corev1.ConfigMap
	require.Eventually(t, func() bool {
		watched, err = records.Lister().ConfigMaps(e.ns).Get(cm.Name)
		return err == nil && watched.ResourceVersion == updated.ResourceVersion
	}, 30*time.Second, 20*time.Millisecond, "the watch brings the update")
	v := summary(watched)
	assert.Equal(t, connection.PhaseSucceeded, v.Phase)
	assert.Equal(t, "rendered 0 objects", v.Message)

	require.NoError(t, e.client.CoreV1().ConfigMaps(e.ns).Delete(e.ctx, cm.Name, metav1.DeleteOptions{}))
	select {
	case last := <-deleted:
		assert.Equal(t, connection.PhaseSucceeded, summary(last).Phase, "the final state's summary")
	case <-time.After(30 * time.Second):
		t.Fatal("no delete event")
	}
}
