package clustertest

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/natscluster"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// TestAgentBehindLeafNode: the edge topology. The hub is the control
// plane (JetStream); the edge cluster runs a leaf node without JetStream
// that dials out to the hub as the cluster's user, and the agent connects
// to the leaf only, without credentials of its own. Nothing listens for
// the hub on the edge side. A request goes from scctl's client on the hub
// to the agent, its status comes back, and a query is answered.
func TestAgentBehindLeafNode(t *testing.T) {
	leafPort := natscluster.FreePorts(t, 1)[0]
	hub := devservertest.Start(t, devserver.Options{Clusters: []string{cluster, "c2"},
		Cluster: devserver.ClusterOptions{LeafListen: fmt.Sprintf("127.0.0.1:%d", leafPort)}})
	cred, _ := hub.Cluster(cluster)

	remote := &url.URL{Scheme: "nats-leaf", Host: fmt.Sprintf("127.0.0.1:%d", leafPort), User: url.UserPassword(devserver.LeafUserName(cluster), cred.Password)}
	edgeOpts := &server.Options{
		ServerName: "edge-" + cluster, Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoSystemAccount: true,
		LeafNode: server.LeafNodeOpts{Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{remote}}}},
		// The edge's clients use the hub's JetStream (default domain).
		JsAccDefaultDomain: map[string]string{server.DEFAULT_GLOBAL_ACCOUNT: ""},
	}
	edge, err := server.NewServer(edgeOpts)
	require.NoError(t, err)
	go edge.Start()
	t.Cleanup(func() { edge.Shutdown(); edge.WaitForShutdown() })
	require.True(t, edge.ReadyForConnections(10*time.Second))
	require.Eventually(t, func() bool { return edge.NumLeafNodes() == 1 }, 10*time.Second, 10*time.Millisecond, "the edge dialled the hub")
	assert.Zero(t, edgeOpts.LeafNode.Port, "the edge accepts no leaf connections: nothing dials in")
	assert.False(t, edge.JetStreamEnabled(), "the edge stores nothing; JetStream is the hub's")

	// The leaf user's wider grant is not to be had from a plain client
	// with the same password (the agent's user is confined the other way).
	_, err = nats.Connect(hub.ClientURL(), nats.UserInfo(devserver.LeafUserName(cluster), cred.Password))
	require.ErrorIs(t, err, nats.ErrAuthorization, "the leaf user as a plain client")
	plain, err := nats.Connect(hub.ClientURL(), nats.UserInfo(cred.User, cred.Password))
	require.NoError(t, err, "the agent's user as a plain client")
	plain.Close()

	logs := &devservertest.LogBuffer{}
	a := startAgent(t, edge.ClientURL(), "", "", logs.Logger())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	admin := hub.Admin()
	cp, err := controlplane.Dial(context.Background(), controlplane.Options{
		URL: hub.ClientURL(), User: admin.User, Password: admin.Password, Cluster: cluster, Timeout: 2 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(cp.Close)

	// The agent's subscriptions reach the hub over the leaf connection
	// asynchronously; the query answers once they have.
	var pub string
	require.Eventually(t, func() bool {
		pub, err = cp.PublicKey(context.Background())
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "query answered through the leaf node")
	assert.Equal(t, a.publicKey(t), pub)

	const key = "AZURE_STORAGEBLOB_CONNECTIONSTRING"
	spec := connection.Spec{Name: "edge_blob", Scope: "default", ClientType: "none",
		TargetService:  connection.TargetService{Type: "storage-blob", ID: "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"},
		AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
		Configurations: []connection.Configuration{{Name: key, Credential: true}}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := cp.Create(ctx, spec, connection.Credentials{key: "cred-VALUE-edge"})
	require.NoError(t, err)
	ev, err := cp.Wait(ctx, spec.Name, id, nil)
	require.NoError(t, err)
	assert.Equal(t, connection.PhaseSucceeded, ev.Phase)
	assert.Equal(t, []string{id}, a.Applied())
	assert.Equal(t, connection.Credentials{key: "cred-VALUE-edge"}, a.Credentials(connection.ObjectID(spec.Name)), "unsealed at the edge")

	listing, err := controlplane.List(ctx, cp, controlplane.ListOptions{})
	require.NoError(t, err)
	require.Len(t, listing.Items, 1)
	assert.Equal(t, "edge_blob", listing.Items[0].Spec.Name)
	assert.NotContains(t, logs.String(), "cred-VALUE")

	// Everything behind the edge is confined to c1: another cluster's
	// consumer and status subjects are out of reach.
	nc, err := nats.Connect(edge.ClientURL(), nats.CustomInboxPrefix(protocol.InboxPrefix(cluster)))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	within := func(f func(context.Context) error) error {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return f(ctx)
	}
	ownConsumer := func() error {
		return within(func(ctx context.Context) error {
			_, err := js.Consumer(ctx, protocol.RequestStream, protocol.ConsumerName(cluster))
			return err
		})
	}
	require.NoError(t, ownConsumer(), "c1's own consumer is reachable: the denials below are permissions")

	// A request waits for c2; the edge tries to take it and to publish c2's
	// status. The hub drops both for the leaf connection's permissions, so
	// the edge's client sees no error, only no answer: the proof is on the
	// hub. A later allowed round trip over the same connection has passed
	// the same route, so the denied messages were judged before it returned.
	_, hubJS := devservertest.AdminConn(t, hub)
	_, err = hubJS.Publish(ctx, protocol.RequestSubject("c2"), []byte(`{}`), jetstream.WithMsgID("for-c2"))
	require.NoError(t, err)
	next := fmt.Sprintf("$JS.API.CONSUMER.MSG.NEXT.%s.%s", protocol.RequestStream, protocol.ConsumerName("c2"))
	require.NoError(t, nc.PublishRequest(next, protocol.InboxPrefix(cluster)+".steal", []byte(`{"batch":1}`)))
	assert.Error(t, within(func(ctx context.Context) error {
		_, err := js.Publish(ctx, protocol.StatusSubject("c2", "x"), []byte("{}"))
		return err
	}), "c2's status from c1's edge")
	require.NoError(t, ownConsumer())

	c2, err := hubJS.Consumer(ctx, protocol.RequestStream, protocol.ConsumerName("c2"))
	require.NoError(t, err)
	assert.Zero(t, c2.CachedInfo().Delivered.Consumer, "c2's request was never delivered to the edge")
	assert.EqualValues(t, 1, c2.CachedInfo().NumPending)
	status, err := hubJS.Stream(ctx, protocol.StatusStream)
	require.NoError(t, err)
	info, err := status.Info(ctx, jetstream.WithSubjectFilter(protocol.StatusSubject("c2", "x")))
	require.NoError(t, err)
	assert.Zero(t, info.State.Subjects[protocol.StatusSubject("c2", "x")], "no status of c2 was stored")
}
