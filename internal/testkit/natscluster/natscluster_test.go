package natscluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/natscluster"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Three nodes come up with R3 streams and an R3 consumer (inherited), and
// a stream whose leader is lost gets another.
func TestThreeNodesReplicateAndReelect(t *testing.T) {
	c := natscluster.Start(t, 3, devserver.Options{Clusters: []string{"c1"}})
	_, js := c.AdminConn()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range []string{protocol.RequestStream, protocol.StatusStream} {
		s, err := js.Stream(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, 3, s.CachedInfo().Config.Replicas, name)
	}
	cons, err := js.Consumer(ctx, protocol.RequestStream, protocol.ConsumerName("c1"))
	require.NoError(t, err)
	assert.Len(t, cons.CachedInfo().Cluster.Replicas, 2, "the consumer inherits R3: a leader and two replicas")
	cred1, _ := c.Node(1).Cluster("c1")
	cred0, _ := c.Credentials("c1")
	assert.Equal(t, cred0, cred1, "every node accepts the same agent password")

	leader := c.StreamLeader(protocol.RequestStream, 10*time.Second)
	c.Stop(leader)
	next := c.StreamLeader(protocol.RequestStream, 20*time.Second)
	assert.NotEqual(t, leader, next)
	c.Restart(leader)
	c.StreamLeader(protocol.RequestStream, 20*time.Second)
}
