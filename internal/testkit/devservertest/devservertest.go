// Package devservertest starts development control planes and agent-side
// connections for tests, the way httptest does for HTTP: a real embedded
// NATS server with JetStream in a temporary directory, never a mock.
package devservertest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
)

// Start runs a development control plane for clusters in t.TempDir() and
// shuts it down when the test ends.
func Start(t testing.TB, o devserver.Options) *devserver.Server {
	t.Helper()
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := devserver.Start(ctx, o)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	return srv
}

// Agent connects as cluster's confined user, like the agent does.
func Agent(t testing.TB, srv *devserver.Server, cluster string, log zerolog.Logger) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	cred, ok := srv.Cluster(cluster)
	require.True(t, ok, "cluster %s has no user", cluster)
	nc, js, err := natsbus.Connect(context.Background(), natsbus.Options{
		URL: srv.ClientURL(), Cluster: cluster, User: cred.User, Password: cred.Password,
		Name: "test-agent-" + cluster, Logger: log, MaxReconnectWait: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.Eventually(t, nc.IsConnected, 10*time.Second, 10*time.Millisecond, "agent connected")
	return nc, js
}

// ControlPlane dials as the admin user, like scctl does.
func ControlPlane(t testing.TB, srv *devserver.Server, cluster string, timeout time.Duration) *controlplane.Client {
	t.Helper()
	admin := srv.Admin()
	c, err := controlplane.Dial(context.Background(), controlplane.Options{
		URL: srv.ClientURL(), User: admin.User, Password: admin.Password, Cluster: cluster, Timeout: timeout,
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// AdminConn is a raw admin connection for reading streams directly.
func AdminConn(t testing.TB, srv *devserver.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	admin := srv.Admin()
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(admin.User, admin.Password))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// LogBuffer collects log output from many goroutines, for scanning.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger logs at debug level into b.
func (b *LogBuffer) Logger() zerolog.Logger {
	return zerolog.New(b).Level(zerolog.DebugLevel).With().Timestamp().Logger()
}
