package heartbeat_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/agent/heartbeat"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/version"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func TestHeartbeatsFollowStateAndStopWithContext(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	agent, _ := devservertest.Agent(t, srv, "c1", zerolog.Nop())
	admin, _ := devservertest.AdminConn(t, srv)
	sub, err := admin.SubscribeSync(protocol.HeartbeatSubject("c1"))
	require.NoError(t, err)
	require.NoError(t, admin.Flush())

	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- heartbeat.Run(ctx, agent, heartbeat.Options{Cluster: "c1", Version: "v1", Pod: "p", Interval: 20 * time.Millisecond,
			State: func() heartbeat.State {
				i := n.Add(1)
				return heartbeat.State{Ready: i > 1, Connections: int(i), LastError: strings.Repeat("e", 5000)}
			}})
	}()
	next := func() protocol.Heartbeat {
		m, err := sub.NextMsg(5 * time.Second)
		require.NoError(t, err)
		var hb protocol.Heartbeat
		require.NoError(t, protocol.Decode(m.Data, protocol.KindHeartbeat, &hb))
		return hb
	}
	first, second := next(), next()
	assert.False(t, first.Ready)
	assert.True(t, second.Ready)
	assert.Equal(t, 1, first.Connections)
	assert.Equal(t, 2, second.Connections)
	assert.Less(t, len(first.LastError), 1100, "a runaway error message is truncated")
	cancel()
	require.NoError(t, <-done)
	// after Run returned nothing more is published
	for {
		if _, err := sub.NextMsg(100 * time.Millisecond); errors.Is(err, nats.ErrTimeout) {
			break
		}
	}
	before := n.Load()
	_, err = sub.NextMsg(100 * time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout)
	assert.Equal(t, before, n.Load())
}

// Without an explicit Version the heartbeat carries the binary's own
// (pkg/version.Version, stamped by the Makefile), with the envelope versions
// the agent decodes, the record schema it writes and the features it has
// (binding: scctl sends spec.binding only to an agent that says so), under the field names
// scctl reads (docs/protocol.md "Compatibility and upgrades").
func TestHeartbeatCarriesTheBuildVersion(t *testing.T) {
	old := version.Version
	version.Version = "v3.1.4"
	t.Cleanup(func() { version.Version = old })
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	agent, _ := devservertest.Agent(t, srv, "c1", zerolog.Nop())
	admin, _ := devservertest.AdminConn(t, srv)
	sub, err := admin.SubscribeSync(protocol.HeartbeatSubject("c1"))
	require.NoError(t, err)
	require.NoError(t, admin.Flush())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- heartbeat.Run(ctx, agent, heartbeat.Options{Cluster: "c1", Pod: "p", Interval: time.Hour,
			State: func() heartbeat.State { return heartbeat.State{} }})
	}()
	m, err := sub.NextMsg(5 * time.Second)
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, err)
	var hb protocol.Heartbeat
	require.NoError(t, protocol.Decode(m.Data, protocol.KindHeartbeat, &hb))
	assert.Equal(t, "v3.1.4", hb.AgentVersion)
	assert.Contains(t, string(m.Data), `"agentVersion":"v3.1.4"`, "the field name the control plane reads")
	assert.Equal(t, []string{protocol.APIVersion}, hb.APIVersions)
	assert.Equal(t, record.SchemaVersion, hb.RecordSchema)
	assert.Contains(t, string(m.Data), `"apiVersions":["sc.v1"]`)
	assert.Contains(t, string(m.Data), fmt.Sprintf(`"recordSchema":%d`, record.SchemaVersion))
	assert.True(t, hb.Supports(protocol.FeatureBinding))
	assert.Contains(t, string(m.Data), `"features":["binding"]`)
}
