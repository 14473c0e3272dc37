package lifecycle_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/agent/lifecycle"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

// What was published just before shutdown (a last status event) reaches
// the server before the connection closes.
func TestDrainNATSFlushesTheLastMessage(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	sub, _ := devservertest.AdminConn(t, srv)
	s, err := sub.SubscribeSync("drain.test")
	require.NoError(t, err)
	require.NoError(t, sub.Flush())

	admin := srv.Admin()
	pub, err := nats.Connect(srv.ClientURL(), nats.UserInfo(admin.User, admin.Password))
	require.NoError(t, err)
	require.NoError(t, pub.Publish("drain.test", []byte("last")))
	lifecycle.DrainNATS(pub, 10*time.Second)
	assert.True(t, pub.IsClosed())

	m, err := s.NextMsg(10 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, "last", string(m.Data))
}
