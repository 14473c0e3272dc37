package statuswatch

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, protocol.StatusEvent) error { return nil }

// An update is judged from the versions the records informer's indexer
// decoded when it stored them: the handler decodes nothing, and queues the
// record only for a change worth an event (or a side it cannot read).
func TestUpdateIsJudgedFromTheCache(t *testing.T) {
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	c, err := New(Deps{Cluster: cluster, Namespace: ns, Client: fake.NewClientset(),
		Records: factory.Core().V1().ConfigMaps(), Publisher: nopPublisher{}, Log: zerolog.Nop()})
	require.NoError(t, err)
	t.Cleanup(c.worker.Queue().ShutDown)
	indexer := factory.Core().V1().ConfigMaps().Informer().GetIndexer()
	at := func(prev *corev1.ConfigMap, cn connection.Connection, rv string) *corev1.ConfigMap {
		out := prev.DeepCopy()
		require.NoError(t, record.Encode(out, cn))
		out.ResourceVersion = rv
		require.NoError(t, indexer.Update(out))
		return out
	}

	cn := conn("blob", connection.PhaseRunning, 1, "req-1")
	v1 := records.ConfigMap(t, cn)
	require.NoError(t, indexer.Add(v1))
	cn.Status.Message = "rendering"
	v2 := at(v1, cn, "2")
	require.EqualValues(t, 2, c.versions.Decodes())

	c.onUpdate(v1, v2)
	assert.Equal(t, 0, c.worker.Queue().Len(), "a message alone is no event")

	cn.Status.Phase = connection.PhaseSucceeded
	v3 := at(v2, cn, "3")
	c.onUpdate(v2, v3)
	assert.Equal(t, 1, c.worker.Queue().Len(), "a new phase is")
	assert.EqualValues(t, 3, c.versions.Decodes(), "one decode per version stored, none per update seen")

	corrupt := v3.DeepCopy()
	corrupt.ResourceVersion = "4"
	corrupt.Data[record.KeyStatus] = "{"
	require.NoError(t, indexer.Update(corrupt))
	k, _ := c.worker.Queue().Get()
	c.worker.Queue().Done(k)
	c.worker.Queue().Forget(k)
	c.onUpdate(v3, corrupt)
	assert.Equal(t, 1, c.worker.Queue().Len(), "a side that cannot be read is left to the worker")
	assert.EqualValues(t, 4, c.versions.Decodes())
}
