package fleetauth_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func open(t *testing.T, dir string) *fleetauth.Keystore {
	t.Helper()
	k, err := fleetauth.Open(dir, devserver.ClusterPermissions)
	require.NoError(t, err)
	return k
}

// A keystore is made once: opening it again keeps every identity, and
// every file (seeds among them) is readable by its owner only.
func TestKeystoreIsCreatedOnceWithOwnerOnlyFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	first := open(t, dir)
	second := open(t, dir)
	assert.Equal(t, first.AccountPublicKey(), second.AccountPublicKey())
	assert.Equal(t, first.SystemAccountPublicKey(), second.SystemAccountPublicKey())
	assert.Equal(t, first.OperatorJWT(), second.OperatorJWT())

	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		names = append(names, e.Name())
		info, err := e.Info()
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), e.Name())
	}
	assert.Subset(t, names, []string{"operator.nk", "operator.jwt", "sys.nk", "sys.jwt", "sys.creds",
		"account.pub", "account-signing.nk", "account.jwt", "admin.creds"})

	ac, err := second.AccountJWT()
	require.NoError(t, err)
	claims, err := jwt.DecodeAccountClaims(ac)
	require.NoError(t, err)
	assert.Equal(t, fleetauth.AccountName, claims.Name)
	assert.True(t, claims.Limits.IsJSEnabled(), "the application account holds the streams")
}

// The user JWT carries devserver.ClusterPermissions unchanged, is signed
// by the account's signing key (not its identity), and a second issue for
// the same cluster is refused.
func TestIssuedUserCarriesExactlyTheClusterPermissions(t *testing.T) {
	k := open(t, t.TempDir())
	creds, err := k.Issue("c1")
	require.NoError(t, err)
	token, err := jwt.ParseDecoratedJWT(creds)
	require.NoError(t, err)
	uc, err := jwt.DecodeUserClaims(token)
	require.NoError(t, err)

	p := devserver.ClusterPermissions("c1")
	assert.Equal(t, p.Publish.Allow, []string(uc.Pub.Allow))
	assert.Equal(t, p.Subscribe.Allow, []string(uc.Sub.Allow))
	assert.Empty(t, uc.Pub.Deny)
	require.NotNil(t, uc.Resp)
	assert.Equal(t, p.Response.MaxMsgs, uc.Resp.MaxMsgs)
	assert.Equal(t, p.Response.Expires, uc.Resp.Expires)
	assert.Equal(t, k.AccountPublicKey(), uc.IssuerAccount)
	assert.NotEqual(t, k.AccountPublicKey(), uc.Issuer, "signed by the signing key")
	assert.Equal(t, []string{jwt.ConnectionTypeStandard}, []string(uc.AllowedConnectionTypes), "a plain client only: no leaf node, websocket or MQTT")
	pub, err := k.UserPublicKey("c1")
	require.NoError(t, err)
	assert.Equal(t, pub, uc.Subject)

	_, err = k.Issue("c1")
	require.ErrorIs(t, err, fleetauth.ErrIssued)
	_, err = k.Issue("Not.A.Cluster")
	require.ErrorIs(t, err, protocol.ErrInvalidEnvelope)
	_, err = k.Issue("c2")
	require.NoError(t, err)
	clusters, err := k.Clusters()
	require.NoError(t, err)
	assert.Equal(t, []string{"c1", "c2"}, clusters)
	_, err = k.Revoke("nope")
	require.ErrorIs(t, err, fleetauth.ErrNotIssued)
}

// ConfigText is a working nats-server configuration: a server started from
// it (file parsed by nats-server itself) admits the admin with JetStream,
// a cluster issued after it started, and after a pushed revocation closes
// that cluster's connection and refuses its next one.
func TestConfigTextRunsAServerThatTakesRuntimeChanges(t *testing.T) {
	dir := t.TempDir()
	k := open(t, filepath.Join(dir, "keys"))
	text, err := k.ConfigText(filepath.Join(dir, "jwt"))
	require.NoError(t, err)
	for _, f := range []string{"operator.nk", "sys.nk", "account-signing.nk"} {
		seed, err := os.ReadFile(filepath.Join(dir, "keys", f))
		require.NoError(t, err)
		assert.NotContains(t, text, strings.TrimSpace(string(seed)), "no seed in the server configuration")
	}
	conf := filepath.Join(dir, "server.conf")
	full := "listen: 127.0.0.1:-1\nserver_name: conf-test\njetstream: { store_dir: " +
		strings.ReplaceAll(filepath.Join(dir, "js"), `\`, `/`) + " }\n" + text
	require.NoError(t, os.WriteFile(conf, []byte(full), 0o600))
	opts, err := server.ProcessConfigFile(conf)
	require.NoError(t, err)
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	require.NoError(t, err)
	go ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second))
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })

	admin, err := nats.Connect(ns.ClientURL(), nats.UserCredentials(k.AdminCredsFile()))
	require.NoError(t, err)
	defer admin.Close()
	js, err := jetstream.New(admin)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"sc.v1.*.heartbeat"}})
	require.NoError(t, err, "the application account has JetStream")

	creds := writeCreds(t, k, "c1")
	asyncErrs := make(chan error, 16)
	agent, err := nats.Connect(ns.ClientURL(), nats.UserCredentials(creds), nats.NoReconnect(),
		nats.CustomInboxPrefix(protocol.InboxPrefix("c1")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErrs <- err }))
	require.NoError(t, err, "a user issued after the server started is admitted")
	defer agent.Close()
	require.NoError(t, agent.Publish(protocol.HeartbeatSubject("c1"), []byte("{}")))
	require.NoError(t, agent.Flush())

	revokeAndPush(t, ctx, k, ns.ClientURL(), "c1")
	waitClosed(t, agent)
	select {
	case err := <-asyncErrs:
		require.ErrorIs(t, err, nats.ErrAuthRevoked, "the server says why it closed the connection")
	case <-time.After(10 * time.Second):
		t.Fatal("the server closed the connection without saying it was revoked")
	}
	_, err = nats.Connect(ns.ClientURL(), nats.UserCredentials(creds), nats.NoReconnect())
	require.ErrorIs(t, err, nats.ErrAuthorization, "a revoked user cannot connect again")
}

func writeCreds(t *testing.T, k *fleetauth.Keystore, cluster string) string {
	t.Helper()
	creds, err := k.Issue(cluster)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), cluster+".creds")
	require.NoError(t, os.WriteFile(path, creds, 0o600))
	return path
}

func revokeAndPush(t *testing.T, ctx context.Context, k *fleetauth.Keystore, url, cluster string) {
	t.Helper()
	pub, err := k.UserPublicKey(cluster)
	require.NoError(t, err)
	token, err := k.Revoke(cluster)
	require.NoError(t, err)
	sys, err := nats.Connect(url, nats.UserCredentials(k.SysCredsFile()))
	require.NoError(t, err)
	defer sys.Close()
	require.NoError(t, fleetauth.PushAccount(ctx, sys, token, pub))
	require.NoError(t, k.Forget(cluster))
}

func waitClosed(t *testing.T, nc *nats.Conn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !nc.IsClosed() {
		require.True(t, time.Now().Before(deadline), "connection still %s", nc.Status())
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

// A resolver directory the configuration's quoting cannot carry is refused.
func TestConfigTextRefusesAnUnquotablePath(t *testing.T) {
	k := open(t, t.TempDir())
	for _, dir := range []string{`C:\jwt`, "/srv/\"jwt\"", "/srv/jwt\n", "/srv/jwté"} {
		_, err := k.ConfigText(dir)
		require.ErrorIs(t, err, fleetauth.ErrKeystore, dir)
	}
	text, err := k.ConfigText("/var/lib/nats/jwt")
	require.NoError(t, err)
	assert.Contains(t, text, `dir: "/var/lib/nats/jwt"`)
}
