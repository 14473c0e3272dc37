package devserver_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/natscluster"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

const (
	fleetIdentities = 1000
	isolationPairs  = 50
	revokedSample   = 10
	// isolationSeed fixes the sample: the same pairs on every run.
	isolationSeed = 12
)

// Issue 12: with 1,000 cluster identities in one account, a seeded
// random sample of cross-cluster reads of requests, status publishes,
// query subscriptions and consumer creations is denied, each attempt
// answered by the server's permission violation; the victims' requests
// stay unread; and a revoked cluster can do nothing (connect refused).
func TestIsolationAtAThousandIdentities(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Auth: devserver.AuthOptions{Mode: devserver.AuthJWT}})
	k, err := srv.Keystore()
	require.NoError(t, err)
	checkFleetIsolation(t, k, []string{srv.ClientURL()})
}

// The same against a 3-node JetStream cluster (R3 streams) sharing one
// keystore: attackers spread over the nodes, revocations pushed to one
// node close connections held by the others.
func TestIsolationAtAThousandIdentitiesOnAThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	keys := filepath.Join(t.TempDir(), "keys")
	c := natscluster.Start(t, 3, devserver.Options{Auth: devserver.AuthOptions{Mode: devserver.AuthJWT, KeystoreDir: keys}})
	k, err := c.Node(0).Keystore()
	require.NoError(t, err)
	c.AdminAuth = nats.UserCredentials(k.AdminCredsFile())
	urls := make([]string, c.Len())
	for i := range urls {
		urls[i] = c.Node(i).ClientURL()
	}
	checkFleetIsolation(t, k, urls)
}

func checkFleetIsolation(t *testing.T, k *fleetauth.Keystore, urls []string) {
	all := strings.Join(urls, ",")
	_, js := adminJS(t, all, k)
	start := time.Now()
	creds := make(map[string][]byte, fleetIdentities)
	ids := make([]string, fleetIdentities)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%04d", i)
		var err error
		creds[ids[i]], err = k.Issue(ids[i])
		require.NoError(t, err)
	}
	t.Logf("issued %d cluster users in %s", fleetIdentities, time.Since(start).Round(time.Millisecond))

	rng := rand.New(rand.NewPCG(isolationSeed, 0))
	perm := rng.Perm(fleetIdentities)
	type pair struct{ attacker, victim string }
	pairs := make([]pair, isolationPairs)
	for i := range pairs {
		pairs[i] = pair{ids[perm[2*i]], ids[perm[2*i+1]]}
	}
	revoked := make([]string, revokedSample)
	for i := range revoked {
		revoked[i] = ids[perm[2*isolationPairs+i]]
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start = time.Now()
	for _, p := range pairs {
		for _, c := range []string{p.attacker, p.victim} {
			_, err := js.CreateOrUpdateConsumer(ctx, protocol.RequestStream, natsbus.ConsumerConfig(c, 0))
			require.NoError(t, err)
		}
		publishRequest(t, js, p.victim, "for-"+p.victim)
	}
	t.Logf("created %d consumers in %s", 2*isolationPairs, time.Since(start).Round(time.Millisecond))

	for i, p := range pairs {
		a, err := dialCreds(t, urls[i%len(urls)], p.attacker, creds[p.attacker])
		require.NoError(t, err, "attacker %s connects", p.attacker)
		// Its credentials work for its own consumer: the denials below are
		// about the victim, not a broken user.
		_, err = a.js.Consumer(ctx, protocol.RequestStream, protocol.ConsumerName(p.attacker))
		require.NoError(t, err, "%s reads its own consumer", p.attacker)

		next := fmt.Sprintf("$JS.API.CONSUMER.MSG.NEXT.%s.%s", protocol.RequestStream, protocol.ConsumerName(p.victim))
		require.NoError(t, a.nc.PublishRequest(next, protocol.InboxPrefix(p.attacker)+".x", []byte(`{"batch":1}`)))
		a.denied(t, "Publish", next)

		status := protocol.StatusSubject(p.victim, "conn1")
		require.NoError(t, a.nc.Publish(status, []byte(`{}`)))
		a.denied(t, "Publish", status)

		_, err = a.nc.Subscribe(protocol.QuerySubjectAll(p.victim), func(*nats.Msg) {})
		require.NoError(t, err)
		a.denied(t, "Subscription", protocol.QuerySubjectAll(p.victim))

		create := fmt.Sprintf("$JS.API.CONSUMER.CREATE.%s.%s.%s", protocol.RequestStream, "x-"+p.victim, protocol.RequestSubject(p.victim))
		require.NoError(t, a.nc.PublishRequest(create, protocol.InboxPrefix(p.attacker)+".y", []byte(`{}`)))
		a.denied(t, "Publish", create)
		a.nc.Close()
	}

	// Nothing got through: each victim's request is still undelivered, no
	// consumer beyond the 100 exists, no status was stored.
	for _, p := range pairs {
		cons, err := js.Consumer(ctx, protocol.RequestStream, protocol.ConsumerName(p.victim))
		require.NoError(t, err)
		info := cons.CachedInfo()
		assert.Equal(t, uint64(1), info.NumPending, "%s's request is unread", p.victim)
		assert.Zero(t, info.Delivered.Consumer, "%s's request was never delivered", p.victim)
	}
	stream, err := js.Stream(ctx, protocol.RequestStream)
	require.NoError(t, err)
	assert.Equal(t, 2*isolationPairs, stream.CachedInfo().State.Consumers)
	status, err := js.Stream(ctx, protocol.StatusStream)
	require.NoError(t, err)
	assert.Zero(t, status.CachedInfo().State.Msgs, "no status was stored")

	checkRevokedCanDoNothing(t, ctx, k, urls, revoked, creds)
	// The revocations touched nobody else.
	a, err := dialCreds(t, urls[0], pairs[0].attacker, creds[pairs[0].attacker])
	require.NoError(t, err)
	_, err = a.js.Consumer(ctx, protocol.RequestStream, protocol.ConsumerName(pairs[0].attacker))
	require.NoError(t, err)
}

// checkRevokedCanDoNothing connects each sampled cluster, revokes them
// all through the first node, and expects every live connection closed as
// revoked and every new connect refused at once, on every node.
func checkRevokedCanDoNothing(t *testing.T, ctx context.Context, k *fleetauth.Keystore, urls, revoked []string, creds map[string][]byte) {
	t.Helper()
	live := make([]*confined, len(revoked))
	for i, c := range revoked {
		var err error
		live[i], err = dialCreds(t, urls[(i+1)%len(urls)], c, creds[c])
		require.NoError(t, err)
	}
	sys, err := nats.Connect(urls[0], nats.UserCredentials(k.SysCredsFile()))
	require.NoError(t, err)
	defer sys.Close()
	for _, c := range revoked {
		pub, err := k.UserPublicKey(c)
		require.NoError(t, err)
		token, err := k.Revoke(c)
		require.NoError(t, err)
		require.NoError(t, fleetauth.PushAccount(ctx, sys, token, pub))
		require.NoError(t, k.Forget(c))
	}
	for i, c := range revoked {
		waitRevoked(t, live[i])
		for _, u := range urls {
			// PushAccount returned once every node applied the revocation:
			// no node admits the user after it.
			_, err := dialCreds(t, u, c, creds[c])
			require.ErrorIs(t, err, nats.ErrAuthorization, "revoked %s refused by %s", c, u)
		}
	}
}
