package cli

import (
	"bytes"
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

func TestServerCommand(t *testing.T) {
	creds, store := filepath.Join(t.TempDir(), "creds"), t.TempDir()
	var out devservertest.LogBuffer
	app := &App{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		exited <- app.Run(ctx, []string{"server", "--listen", "127.0.0.1:0", "--cluster", "c1", "--cluster", "c2",
			"--store-dir", store, "--write-creds", creds})
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "Stop with") }, 20*time.Second, 10*time.Millisecond, out.String())

	text := out.String()
	assert.Contains(t, text, "warning:       a loopback address is not reachable from pods")
	assert.Contains(t, text, "--set cluster.id=c2 --set nats.url=nats://127.0.0.1:")
	assert.Contains(t, text, "kubectl apply -n sc-system -f "+filepath.Join(creds, "c1-nats-secret.yaml"))
	env := readEnvFile(t, filepath.Join(creds, "scctl.env"))
	assert.NotContains(t, text, env["SCCTL_PASSWORD"], "passwords go to files only")
	for _, f := range []string{"scctl.env", "c1-nats-secret.yaml", "c2-nats-secret.yaml"} {
		fi, err := os.Stat(filepath.Join(creds, f))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}

	// The written credentials work: a query reaches the server, and with no
	// agent it fails fast with exit code 3.
	env["SCCTL_CLUSTER"] = "c1"
	var qout, qerr bytes.Buffer
	client := &App{Stdout: &qout, Stderr: &qerr, Getenv: func(k string) string { return env[k] }}
	assert.Equal(t, ExitUnreachable, client.Run(context.Background(), []string{"connection", "list"}), qerr.String())

	cancel()
	select {
	case code := <-exited:
		assert.Equal(t, ExitOK, code)
	case <-time.After(20 * time.Second):
		t.Fatal("scctl server did not stop when its context ended")
	}
	assert.Contains(t, out.String(), "scctl server: shutting down")
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		require.True(t, ok, line)
		env[k] = v
	}
	return env
}

func TestReachableHost(t *testing.T) {
	assert.Equal(t, "10.1.2.3", reachableHost("10.1.2.3"))
	h := reachableHost("0.0.0.0")
	assert.NotEqual(t, "0.0.0.0", h, "a wildcard address is never handed to pods")
}
