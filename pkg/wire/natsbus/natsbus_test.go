package natsbus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func TestConnectRequiresCluster(t *testing.T) {
	_, _, err := natsbus.Connect(context.Background(), natsbus.Options{URL: "nats://127.0.0.1:1", Cluster: "a.b"})
	require.ErrorIs(t, err, natsbus.ErrNoCluster)
}

// The agent starts before the control plane is up, keeps trying, and
// survives a control-plane restart, logging both.
func TestConnectRetriesAndReconnects(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	cred, _ := srv.Cluster("c1")
	srv.Shutdown()

	logs := &devservertest.LogBuffer{}
	nc, js, err := natsbus.Connect(context.Background(), natsbus.Options{URL: srv.ClientURL(), Cluster: "c1",
		User: cred.User, Password: cred.Password, Logger: logs.Logger(), MaxReconnectWait: 100 * time.Millisecond})
	require.NoError(t, err, "a control plane that is down is not an error")
	defer nc.Close()
	assert.False(t, nc.IsConnected())
	assert.True(t, strings.HasPrefix(nc.NewInbox(), protocol.InboxPrefix("c1")+"."), "confined inbox")

	require.NoError(t, srv.Restart(context.Background()))
	require.Eventually(t, nc.IsConnected, 10*time.Second, 10*time.Millisecond)
	_, err = js.Consumer(context.Background(), protocol.RequestStream, protocol.ConsumerName("c1"))
	require.NoError(t, err)

	require.NoError(t, srv.Restart(context.Background()))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "reconnected to NATS") }, 10*time.Second, 10*time.Millisecond)
	assert.Contains(t, logs.String(), "disconnected from NATS")
	assert.NotContains(t, logs.String(), cred.Password)
}

func TestBackoffGrowsToCapWithJitter(t *testing.T) {
	b := natsbus.Backoff(100*time.Millisecond, time.Second)
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 10: time.Second} {
		for i := 0; i < 50; i++ {
			d := b(attempt)
			assert.GreaterOrEqual(t, d, want/2, "attempt %d", attempt)
			assert.LessOrEqual(t, d, want, "attempt %d", attempt)
		}
	}
}

func TestConnectErrorHidesPassword(t *testing.T) {
	for _, u := range []string{"nats://u:cred-VALUE-pw@[::bad", "nats://127.0.0.1:1, nats://u:cred-VALUE-pw@[::bad"} {
		_, _, err := natsbus.Connect(context.Background(), natsbus.Options{URL: u, Cluster: "c1"})
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "cred-VALUE-pw")
	}
}

func TestStreamDefinitions(t *testing.T) {
	req := natsbus.RequestStreamConfig()
	assert.Equal(t, protocol.RequestStreamSubjects(), req.Subjects)
	assert.Equal(t, "WorkQueue", req.Retention.String())
	assert.Equal(t, "File", req.Storage.String())
	st := natsbus.StatusStreamConfig()
	assert.EqualValues(t, natsbus.StatusPerSubject, st.MaxMsgsPerSubject)
	c := natsbus.ConsumerConfig("c1", 0)
	assert.Equal(t, protocol.RequestSubject("c1"), c.FilterSubject)
	assert.Equal(t, natsbus.RequestMaxAckPending, c.MaxAckPending, "many requests in flight; the agent orders them per connection")
	assert.Equal(t, -1, c.MaxDeliver, "the server never drops a request silently")
	assert.Equal(t, natsbus.DefaultAckWait, c.AckWait)
}

// A fleet beyond nats-server's default 1,000 consumers per stream: the
// streams' own limit lets the 1,001st cluster's consumer in, on a server
// in password mode (no account limit to lift the cap).
func TestRequestStreamTakesMoreThanAThousandClusters(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{})
	_, js := devservertest.AdminConn(t, srv)
	ctx := context.Background()
	for i := range 1001 {
		_, err := js.CreateOrUpdateConsumer(ctx, protocol.RequestStream, natsbus.ConsumerConfig(fmt.Sprintf("c%d", i), 0))
		require.NoError(t, err, "consumer %d", i)
	}
}

// A consumer as the server reports it back (its defaults filled in) is the
// same as the one asked for; one differing field is not.
func TestSameConsumerIgnoresServerDefaults(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	_, js := devservertest.AdminConn(t, srv)
	ctx := context.Background()
	want := natsbus.ConsumerConfig("c1", 0)
	cons, err := js.Consumer(ctx, protocol.RequestStream, want.Durable)
	require.NoError(t, err)
	have := cons.CachedInfo().Config
	assert.True(t, natsbus.SameConsumer(have, want))
	other := natsbus.ConsumerConfig("c1", time.Minute)
	assert.False(t, natsbus.SameConsumer(have, other))
}
