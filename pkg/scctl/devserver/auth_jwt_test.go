package devserver_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleet"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// credsAuth authenticates with a .creds file's JWT and seed, in memory.
func credsAuth(t testing.TB, creds []byte) nats.Option {
	t.Helper()
	token, err := jwt.ParseDecoratedJWT(creds)
	require.NoError(t, err)
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	return nats.UserJWTAndSeed(token, string(seed))
}

// manifestCreds reads the creds a jwt-mode server wrote for cluster.
func manifestCreds(t testing.TB, storeDir, cluster string) []byte {
	t.Helper()
	raw, err := os.ReadFile(devserver.SecretManifestPath(storeDir, cluster))
	require.NoError(t, err)
	var s corev1.Secret
	require.NoError(t, yaml.UnmarshalStrict(raw, &s))
	require.Equal(t, devserver.SecretName, s.Name)
	require.Contains(t, s.StringData, "creds", "the chart's creds format")
	return []byte(s.StringData["creds"])
}

// dialCreds is dialAs for a JWT user, on any of urls.
func dialCreds(t testing.TB, urls, cluster string, creds []byte, extra ...nats.Option) (*confined, error) {
	t.Helper()
	c := &confined{errs: make(chan error, 64)}
	opts := append([]nats.Option{credsAuth(t, creds), nats.NoReconnect(),
		nats.CustomInboxPrefix(protocol.InboxPrefix(cluster)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case c.errs <- err:
			default: // a test that stopped reading must not block the client
			}
		})}, extra...)
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	c.js, err = jetstream.New(nc)
	require.NoError(t, err)
	return c, nil
}

// fetchOne reads one request from cluster's consumer as that cluster's
// agent does and acks it.
func fetchOne(t testing.TB, c *confined, cluster string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := c.js.Consumer(ctx, protocol.RequestStream, protocol.ConsumerName(cluster))
	require.NoError(t, err)
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var got []byte
	for m := range batch.Messages() {
		got = m.Data()
		require.NoError(t, m.DoubleAck(ctx))
	}
	require.NoError(t, batch.Error())
	require.NotNil(t, got, "a request for %s", cluster)
	return got
}

// adminJS is a jwt-mode admin connection, as scctl makes with the
// keystore's admin creds.
func adminJS(t testing.TB, urls string, k *fleetauth.Keystore) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(urls, nats.UserCredentials(k.AdminCredsFile()))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// addCluster and removeCluster are `scctl cluster add|remove`'s own steps
// (pkg/scctl/fleet): nothing on the server but a consumer and, for a
// removal, the pushed account JWT.
func addCluster(t testing.TB, js jetstream.JetStream, k *fleetauth.Keystore, cluster string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	creds, err := fleet.Add(ctx, js, k, cluster, 0)
	require.NoError(t, err)
	return creds
}

func removeCluster(t testing.TB, urls string, js jetstream.JetStream, k *fleetauth.Keystore, cluster string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sys, err := nats.Connect(urls, nats.UserCredentials(k.SysCredsFile()))
	require.NoError(t, err)
	defer sys.Close()
	_, err = fleet.Remove(ctx, js, sys, k, cluster)
	require.NoError(t, err)
}

func publishRequest(t testing.TB, js jetstream.JetStream, cluster, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := js.Publish(ctx, protocol.RequestSubject(cluster), []byte(`{"id":"`+id+`"}`), jetstream.WithMsgID(id))
	require.NoError(t, err)
}

// waitRevoked waits until the server has closed c's connection, saying
// the user was revoked.
func waitRevoked(t testing.TB, c *confined) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-c.errs:
			if errors.Is(err, nats.ErrAuthRevoked) {
				require.Eventually(t, c.nc.IsClosed, 10*time.Second, 5*time.Millisecond, "closed after the revocation")
				return
			}
		case <-deadline:
			t.Fatalf("connection not closed as revoked; status %s", c.nc.Status())
		}
	}
}

// A jwt-mode server takes a cluster added while it runs (a consumer and a
// user signed by the account's signing key: no server change), and on
// removal closes that cluster's live connection and refuses its next one,
// while the other cluster keeps working. A restart keeps all of it: the
// --cluster user is not issued again, the removed one stays revoked.
func TestJWTModeAddsAndRemovesClustersAtRuntime(t *testing.T) {
	dir := t.TempDir()
	srv := devservertest.Start(t, devserver.Options{StoreDir: dir, Clusters: []string{"c1"},
		Auth: devserver.AuthOptions{Mode: devserver.AuthJWT}})
	k, err := srv.Keystore()
	require.NoError(t, err)
	assert.NoFileExists(t, dir+"/credentials/users.json", "jwt mode keeps no passwords")
	st, err := os.Stat(devserver.SecretManifestPath(dir, "c1"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	c1Creds := manifestCreds(t, dir, "c1")
	c1Pub, err := k.UserPublicKey("c1")
	require.NoError(t, err)

	_, js := adminJS(t, srv.ClientURL(), k)
	c1, err := dialCreds(t, srv.ClientURL(), "c1", c1Creds)
	require.NoError(t, err)
	publishRequest(t, js, "c1", "r1")
	assert.JSONEq(t, `{"id":"r1"}`, string(fetchOne(t, c1, "c1")))

	c2Creds := addCluster(t, js, k, "c2")
	c2, err := dialCreds(t, srv.ClientURL(), "c2", c2Creds)
	require.NoError(t, err, "a cluster added at runtime connects without a server change")
	publishRequest(t, js, "c2", "r2")
	assert.JSONEq(t, `{"id":"r2"}`, string(fetchOne(t, c2, "c2")))

	removeCluster(t, srv.ClientURL(), js, k, "c2")
	waitRevoked(t, c2)
	_, err = dialCreds(t, srv.ClientURL(), "c2", c2Creds)
	require.ErrorIs(t, err, nats.ErrAuthorization, "a removed cluster's next connect is refused")
	require.True(t, c1.nc.IsConnected(), "the other cluster is untouched")
	publishRequest(t, js, "c1", "r3")
	assert.JSONEq(t, `{"id":"r3"}`, string(fetchOne(t, c1, "c1")))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, srv.Restart(ctx))
	k, err = srv.Keystore()
	require.NoError(t, err)
	pub, err := k.UserPublicKey("c1")
	require.NoError(t, err)
	assert.Equal(t, c1Pub, pub, "a restart issues nothing new")
	assert.Equal(t, c1Creds, manifestCreds(t, dir, "c1"))
	_, err = dialCreds(t, srv.ClientURL(), "c2", c2Creds)
	require.ErrorIs(t, err, nats.ErrAuthorization, "still revoked after a restart")
	c1again, err := dialCreds(t, srv.ClientURL(), "c1", c1Creds)
	require.NoError(t, err)
	_, js = adminJS(t, srv.ClientURL(), k)
	publishRequest(t, js, "c1", "r4")
	assert.JSONEq(t, `{"id":"r4"}`, string(fetchOne(t, c1again, "c1")))
	_, err = js.Consumer(ctx, protocol.RequestStream, protocol.ConsumerName("c2"))
	require.ErrorIs(t, err, jetstream.ErrConsumerNotFound, "provision recreates only the keystore's clusters")
}

func TestAuthOptionsAreValidated(t *testing.T) {
	require.NoError(t, devserver.AuthOptions{}.Validate())
	require.NoError(t, devserver.AuthOptions{Mode: devserver.AuthJWT, KeystoreDir: "/k"}.Validate())
	require.ErrorIs(t, devserver.AuthOptions{Mode: "ldap"}.Validate(), devserver.ErrAuthOptions)
	require.ErrorIs(t, devserver.AuthOptions{KeystoreDir: "/k"}.Validate(), devserver.ErrAuthOptions)
	_, err := devserver.Start(context.Background(), devserver.Options{StoreDir: t.TempDir(), Auth: devserver.AuthOptions{Mode: "ldap"}})
	require.ErrorIs(t, err, devserver.ErrAuthOptions)
}
