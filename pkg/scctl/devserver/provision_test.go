package devserver_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// A restart of a server whose consumers are as wanted already lists them
// once and writes none: with a thousand clusters, a restarted node is
// otherwise a thousand updates through the meta leader.
func TestRestartWritesNoConsumerThatIsAsWanted(t *testing.T) {
	clusters := make([]string, 50)
	for i := range clusters {
		clusters[i] = fmt.Sprintf("c%d", i)
	}
	srv := devservertest.Start(t, devserver.Options{Clusters: clusters})
	require.NoError(t, srv.Restart(context.Background()))
	_, js := devservertest.AdminConn(t, srv)
	info, err := js.AccountInfo(context.Background())
	require.NoError(t, err)
	// the streams' two updates, the stream lookup and one page of the
	// consumer listing, and this AccountInfo: far from one per cluster
	assert.Less(t, info.API.Total, uint64(len(clusters)/5), "JetStream API calls since the restart")
	for _, c := range clusters[:3] {
		_, err := js.Consumer(context.Background(), protocol.RequestStream, protocol.ConsumerName(c))
		require.NoError(t, err)
	}
}
