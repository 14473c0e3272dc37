package heartbeat_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/agent/heartbeat"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// CountPhases reads the summaries the leader's records informer attaches
// (its real transform, launcher.RecordForCache): a record it could not
// decode, or one cached without a summary, counts as Unknown.
func TestCountPhasesFromTheCachedSummaries(t *testing.T) {
	cached := func(cm *corev1.ConfigMap) *corev1.ConfigMap {
		out, err := launcher.RecordForCache(cm)
		require.NoError(t, err)
		return out.(*corev1.ConfigMap)
	}
	corrupt := records.ConfigMap(t, records.Connection("bad", connection.PhaseSucceeded, 1))
	for k := range corrupt.Data {
		corrupt.Data[k] = "{not json"
	}
	list := []*corev1.ConfigMap{
		cached(records.ConfigMap(t, records.Connection("a", connection.PhaseSucceeded, 1))),
		cached(records.ConfigMap(t, records.Connection("b", connection.PhaseSucceeded, 2))),
		cached(records.ConfigMap(t, records.Connection("c", connection.PhasePending, 1))),
		cached(records.ConfigMap(t, records.Connection("d", connection.PhaseFailed, 1))),
		cached(corrupt),
		{ObjectMeta: metav1.ObjectMeta{Name: "never-summarised"}},
	}
	assert.Equal(t, map[string]int{"Succeeded": 2, "Pending": 1, "Failed": 1, heartbeat.PhaseUnknown: 2}, heartbeat.CountPhases(list))
	assert.Nil(t, heartbeat.CountPhases(nil), "no connections: no phases field")
}

func TestHeartbeatCarriesPhases(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	agent, _ := devservertest.Agent(t, srv, "c1", zerolog.Nop())
	admin, _ := devservertest.AdminConn(t, srv)
	sub, err := admin.SubscribeSync(protocol.HeartbeatSubject("c1"))
	require.NoError(t, err)
	require.NoError(t, admin.Flush())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- heartbeat.Run(ctx, agent, heartbeat.Options{Cluster: "c1", Interval: time.Hour,
			State: func() heartbeat.State {
				return heartbeat.State{Connections: 3, Phases: map[string]int{"Succeeded": 2, "Pending": 1}}
			}})
	}()
	m, err := sub.NextMsg(5 * time.Second)
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, err)
	assert.Contains(t, string(m.Data), `"phases":{"Pending":1,"Succeeded":2}`, "the field name scctl cluster list reads")
	hb, err := protocol.DecodeHeartbeat(m.Data)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"Succeeded": 2, "Pending": 1}, hb.Phases)
}
