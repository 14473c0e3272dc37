package devserver_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/natscluster"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleet"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
)

// A removal while one of three nodes is down says so instead of reporting
// success: that node would admit the revoked cluster when it is back, until
// its resolver's next sync. Run again with every node up, it completes.
func TestRemoveWithANodeDownSaysSoAndCompletesLater(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	keys := filepath.Join(t.TempDir(), "keys")
	c := natscluster.Start(t, 3, devserver.Options{Clusters: []string{"c1"},
		Auth: devserver.AuthOptions{Mode: devserver.AuthJWT, KeystoreDir: keys}})
	k, err := c.Node(0).Keystore()
	require.NoError(t, err)
	c.AdminAuth = nats.UserCredentials(k.AdminCredsFile())
	_, js := c.AdminConn()
	sys, err := nats.Connect(c.Node(0).ClientURL(), nats.UserCredentials(k.SysCredsFile()))
	require.NoError(t, err)
	t.Cleanup(sys.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c.Stop(2)
	_, err = fleet.Remove(ctx, js, sys, k, "c1")
	require.ErrorIs(t, err, fleetauth.ErrPush)
	assert.Contains(t, err.Error(), "2 of the JetStream cluster's 3 servers answered")
	_, err = k.UserPublicKey("c1")
	require.NoError(t, err, "not forgotten: the removal is not done")

	c.Restart(2)
	got, err := fleet.Remove(ctx, js, sys, k, "c1")
	require.NoError(t, err)
	assert.Equal(t, "c1", got.Cluster)
	_, err = k.UserPublicKey("c1")
	require.ErrorIs(t, err, fleetauth.ErrNotIssued)
}
