package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/tlstest"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

// `scctl server --tls-*` requires TLS and client certificates; scctl's
// --tls-* flags (or SCCTL_TLS_*) reach it, and without them the error
// says what is wrong.
func TestServerAndClientTLS(t *testing.T) {
	pki := tlstest.New(t)
	creds := filepath.Join(t.TempDir(), "creds")
	var out devservertest.LogBuffer
	app := &App{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		exited <- app.Run(ctx, []string{"server", "--listen", "127.0.0.1:0", "--cluster", "c1", "--store-dir", t.TempDir(),
			"--write-creds", creds, "--tls-cert", pki.ServerCert, "--tls-key", pki.ServerKey, "--tls-ca", pki.CAFile})
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "Stop with") }, 20*time.Second, 10*time.Millisecond, out.String())
	text := out.String()
	assert.Contains(t, text, "--set nats.url=tls://127.0.0.1:")
	assert.Contains(t, text, "client certs:  required, signed by "+pki.CAFile)
	env := readEnvFile(t, filepath.Join(creds, "scctl.env"))
	require.True(t, strings.HasPrefix(env["SCCTL_SERVER"], "tls://"), env["SCCTL_SERVER"])
	keyPEM, err := os.ReadFile(pki.ClientKey)
	require.NoError(t, err)

	run := func(extraEnv map[string]string, args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		client := &App{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string {
			if v, ok := extraEnv[k]; ok {
				return v
			}
			return env[k]
		}}
		code := client.Run(context.Background(), append([]string{"connection", "list", "--cluster", "c1"}, args...))
		assert.NotContains(t, stderr.String(), env["SCCTL_PASSWORD"])
		assert.NotContains(t, stderr.String(), string(keyPEM))
		return code, stderr.String()
	}

	code, msg := run(nil, "--tls-ca", pki.CAFile, "--tls-cert", pki.ClientCert, "--tls-key", pki.ClientKey)
	assert.Equal(t, ExitUnreachable, code, "connected; no agent answers: %s", msg)
	assert.Contains(t, msg, "agent of cluster \"c1\" is not reachable")

	code, msg = run(map[string]string{"SCCTL_TLS_CA": pki.CAFile, "SCCTL_TLS_CERT": pki.ClientCert, "SCCTL_TLS_KEY": pki.ClientKey})
	assert.Equal(t, ExitUnreachable, code, "the same through SCCTL_TLS_*: %s", msg)

	code, msg = run(nil)
	assert.Equal(t, ExitFailed, code)
	assert.Contains(t, msg, "certificate signed by unknown authority")
	assert.Contains(t, msg, "--tls-ca")

	code, msg = run(nil, "--tls-ca", pki.CAFile)
	assert.Equal(t, ExitFailed, code, "no client certificate: %s", msg)
	assert.Contains(t, msg, "--tls-cert")

	code, msg = run(nil, "--tls-ca", filepath.Join(pki.Dir, "nope.crt"))
	assert.Equal(t, ExitFailed, code)
	assert.Contains(t, msg, "nope.crt")
	assert.Contains(t, msg, "--tls-ca")

	code, msg = run(nil, "--tls-ca", pki.CAFile, "--tls-cert", pki.ClientCert)
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, msg, "--tls-cert and --tls-key go together")
}

func TestServerTLSFlagUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--tls-cert", "a.crt"},
		{"--tls-key", "a.key"},
		{"--tls-ca", "ca.crt"},
	} {
		var stderr bytes.Buffer
		app := &App{Stdout: &stderr, Stderr: &stderr, Getenv: func(string) string { return "" },
			Serve: func(context.Context, ServerOptions, io.Writer) error { t.Fatal("must not start"); return nil }}
		assert.Equal(t, ExitUsage, app.Run(context.Background(), append([]string{"server", "--listen", "127.0.0.1:0"}, args...)), stderr.String())
	}
}

// SCCTL_TLS_* are the client's files; they never become the server's.
func TestServerIgnoresClientTLSEnvironment(t *testing.T) {
	var got ServerOptions
	app := &App{Stdout: io.Discard, Stderr: io.Discard,
		Getenv: func(k string) string {
			return map[string]string{"SCCTL_TLS_CA": "client-ca.crt", "SCCTL_TLS_CERT": "client.crt", "SCCTL_TLS_KEY": "client.key"}[k]
		},
		Serve: func(_ context.Context, o ServerOptions, _ io.Writer) error { got = o; return nil }}
	require.Equal(t, ExitOK, app.Run(context.Background(), []string{"server", "--listen", "127.0.0.1:0", "--tls-cert", "s.crt", "--tls-key", "s.key"}))
	assert.Equal(t, ServerOptions{Listen: "127.0.0.1:0", TLS: devserver.TLSOptions{CertFile: "s.crt", KeyFile: "s.key"}}, got)
}
