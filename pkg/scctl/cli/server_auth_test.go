package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
)

// `scctl server --auth jwt` writes an scctl.env that `scctl cluster`
// works with as it is: the admin's creds and the keystore.
func TestServerInJWTModeHandsScctlItsKeystore(t *testing.T) {
	creds, store := filepath.Join(t.TempDir(), "creds"), t.TempDir()
	var out devservertest.LogBuffer
	app := &App{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		exited <- app.Run(ctx, []string{"server", "--listen", "127.0.0.1:0", "--auth", "jwt", "--cluster", "c1",
			"--store-dir", store, "--write-creds", creds})
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "Stop with") }, 20*time.Second, 10*time.Millisecond, out.String())
	text := out.String()
	assert.Contains(t, text, "--set cluster.id=c1 --set nats.url=nats://127.0.0.1:")
	assert.Contains(t, text, "--set nats.credentialsSecret=sc-nats-credentials --set nats.credentialsFormat=creds")
	env := readEnvFile(t, filepath.Join(creds, "scctl.env"))
	keys := filepath.Join(store, "credentials")
	assert.Equal(t, filepath.Join(keys, "admin.creds"), env["SCCTL_CREDS"])
	assert.Equal(t, keys, env[keystoreEnv])
	assert.NotContains(t, env, "SCCTL_PASSWORD")
	secretCreds(t, filepath.Join(creds, "c1-nats-secret.yaml"))

	add := scctl(t, env, "cluster", "add", "c2", "--secret-file", "-")
	require.Equal(t, ExitOK, add.code, add.stderr)
	assert.True(t, strings.HasPrefix(add.stdout, "apiVersion: v1\nkind: Secret\n"), "the manifest alone on stdout: %s", add.stdout)
	assert.Contains(t, add.stderr, "cluster c2 added")
	views := listJSON(t, env)
	assert.True(t, views["c1"].Issued && views["c1"].Consumer)
	assert.True(t, views["c2"].Issued && views["c2"].Consumer)

	conf := scctl(t, env, "cluster", "server-config", "--resolver-dir", "/var/lib/nats/jwt")
	require.Equal(t, ExitOK, conf.code, conf.stderr)
	assert.Contains(t, conf.stdout, "operator: \"ey")
	assert.Contains(t, conf.stdout, "type: full\n  dir: \"/var/lib/nats/jwt\"")
	assert.Contains(t, conf.stdout, "resolver_preload: {")
	for _, f := range []string{"operator.nk", "sys.nk", "account-signing.nk"} {
		seed, err := os.ReadFile(filepath.Join(keys, f))
		require.NoError(t, err)
		assert.NotContains(t, conf.stdout, strings.TrimSpace(string(seed)), "no seed in the server configuration")
	}

	cancel()
	select {
	case code := <-exited:
		assert.Equal(t, ExitOK, code)
	case <-time.After(20 * time.Second):
		t.Fatal("scctl server did not stop when its context ended")
	}
	bad := scctl(t, nil, "server", "--auth", "ldap")
	assert.Equal(t, ExitUsage, bad.code)
	assert.Contains(t, bad.stderr, `"ldap" is not password or jwt`)
}
