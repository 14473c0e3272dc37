package fleet_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleet"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Add then Remove on a running jwt-mode server: the consumer and the user
// appear and go, waiting requests are purged and counted, the user is
// refused after, and each step refuses to be done twice.
func TestAddThenRemove(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Auth: devserver.AuthOptions{Mode: devserver.AuthJWT}})
	k, err := srv.Keystore()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(srv.ClientURL(), nats.UserCredentials(k.AdminCredsFile()))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	sys, err := nats.Connect(srv.ClientURL(), nats.UserCredentials(k.SysCredsFile()))
	require.NoError(t, err)
	t.Cleanup(sys.Close)

	_, err = fleet.Remove(ctx, js, sys, k, "c1")
	require.ErrorIs(t, err, fleetauth.ErrNotIssued)

	creds, err := fleet.Add(ctx, js, k, "c1", 0)
	require.NoError(t, err)
	_, err = js.Consumer(ctx, protocol.RequestStream, protocol.ConsumerName("c1"))
	require.NoError(t, err, "the consumer exists")
	credsFile := filepath.Join(t.TempDir(), "c1.creds")
	require.NoError(t, os.WriteFile(credsFile, creds, 0o600))
	agent, err := nats.Connect(srv.ClientURL(), nats.UserCredentials(credsFile))
	require.NoError(t, err, "the issued user connects")
	agent.Close()
	_, err = fleet.Add(ctx, js, k, "c1", 0)
	require.ErrorIs(t, err, fleetauth.ErrIssued)

	for _, id := range []string{"r1", "r2"} {
		_, err := js.Publish(ctx, protocol.RequestSubject("c1"), []byte(`{}`), jetstream.WithMsgID(id))
		require.NoError(t, err)
	}
	pub, err := k.UserPublicKey("c1")
	require.NoError(t, err)
	got, err := fleet.Remove(ctx, js, sys, k, "c1")
	require.NoError(t, err)
	assert.Equal(t, fleet.Removed{Cluster: "c1", RevokedUser: pub, Consumer: protocol.ConsumerName("c1"), DroppedRequests: 2}, got)
	_, err = js.Consumer(ctx, protocol.RequestStream, protocol.ConsumerName("c1"))
	require.ErrorIs(t, err, jetstream.ErrConsumerNotFound)
	_, err = nats.Connect(srv.ClientURL(), nats.UserCredentials(credsFile))
	require.ErrorIs(t, err, nats.ErrAuthorization, "revoked")
	_, err = fleet.Remove(ctx, js, sys, k, "c1")
	require.ErrorIs(t, err, fleetauth.ErrNotIssued, "forgotten")
}
