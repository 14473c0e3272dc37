package natsbus_test

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/tlstest"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// agentConnect connects as c1's agent with files and returns the
// connection and what it logged.
func agentConnect(t *testing.T, srv *devserver.Server, url string, files natsbus.TLSFiles) (*nats.Conn, *devservertest.LogBuffer) {
	t.Helper()
	cred, _ := srv.Cluster("c1")
	logs := &devservertest.LogBuffer{}
	nc, _, err := natsbus.Connect(context.Background(), natsbus.Options{URL: url, Cluster: "c1",
		User: cred.User, Password: cred.Password, TLS: files, Logger: logs.Logger(), MaxReconnectWait: 50 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc, logs
}

// neverConnects waits until the agent has logged why a dial failed and
// checks that it is still not connected.
func neverConnects(t *testing.T, nc *nats.Conn, logs *devservertest.LogBuffer, reason string) {
	t.Helper()
	if !assert.Eventually(t, func() bool { return strings.Contains(logs.String(), reason) }, 10*time.Second, 10*time.Millisecond,
		"the agent logs %q", reason) {
		t.Fatalf("logged:\n%s", logs.String())
	}
	assert.False(t, nc.IsConnected())
	assert.Contains(t, logs.String(), "connecting to NATS failed; retrying")
}

func TestConnectTLSVerifiesTheServer(t *testing.T) {
	pki := tlstest.New(t)
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"},
		TLS: devserver.TLSOptions{CertFile: pki.ServerCert, KeyFile: pki.ServerKey}})
	require.True(t, strings.HasPrefix(srv.ClientURL(), "tls://"), srv.ClientURL())

	t.Run("connects with the CA bundle", func(t *testing.T) {
		nc, _ := agentConnect(t, srv, srv.ClientURL(), natsbus.TLSFiles{CAFile: pki.CAFile})
		require.Eventually(t, nc.IsConnected, 10*time.Second, 10*time.Millisecond)
		state, err := nc.TLSConnectionState()
		require.NoError(t, err)
		assert.True(t, state.HandshakeComplete)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		_, err = js.Consumer(context.Background(), protocol.RequestStream, protocol.ConsumerName("c1"))
		require.NoError(t, err, "the agent's own work goes through the TLS connection")
	})

	t.Run("a nats:// URL with the CA bundle still uses TLS", func(t *testing.T) {
		nc, _ := agentConnect(t, srv, strings.Replace(srv.ClientURL(), "tls://", "nats://", 1), natsbus.TLSFiles{CAFile: pki.CAFile})
		require.Eventually(t, nc.IsConnected, 10*time.Second, 10*time.Millisecond)
		_, err := nc.TLSConnectionState()
		require.NoError(t, err)
	})

	t.Run("refuses a server signed by an unknown authority", func(t *testing.T) {
		nc, logs := agentConnect(t, srv, srv.ClientURL(), natsbus.TLSFiles{})
		neverConnects(t, nc, logs, "certificate signed by unknown authority")
		nc2, logs2 := agentConnect(t, srv, srv.ClientURL(), natsbus.TLSFiles{CAFile: pki.OtherCAFile})
		neverConnects(t, nc2, logs2, "certificate signed by unknown authority")
	})

	t.Run("a plaintext client is refused", func(t *testing.T) {
		u, err := url.Parse(srv.ClientURL())
		require.NoError(t, err)
		conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		require.NoError(t, err)
		defer func() { _ = conn.Close() }()
		require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
		r := bufio.NewReader(conn)
		info, err := r.ReadString('\n')
		require.NoError(t, err)
		assert.Contains(t, info, `"tls_required":true`)
		cred, _ := srv.Cluster("c1")
		_, err = conn.Write([]byte(`CONNECT {"verbose":false,"user":"` + cred.User + `","pass":"` + cred.Password + "\"}\r\nPING\r\n"))
		require.NoError(t, err)
		rest, _ := r.ReadString('\n') // the server answers in plaintext with an error, or hangs up
		assert.NotContains(t, rest, "PONG", "no plaintext session is ever established")
	})
}

func TestConnectTLSClientCertificate(t *testing.T) {
	pki := tlstest.New(t)
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"},
		TLS: devserver.TLSOptions{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile}})

	t.Run("connects with a certificate the server's client CA signed", func(t *testing.T) {
		nc, _ := agentConnect(t, srv, srv.ClientURL(), natsbus.TLSFiles{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey})
		require.Eventually(t, nc.IsConnected, 10*time.Second, 10*time.Millisecond)
	})
	t.Run("refused without a client certificate", func(t *testing.T) {
		nc, logs := agentConnect(t, srv, srv.ClientURL(), natsbus.TLSFiles{CAFile: pki.CAFile})
		// TLS 1.3 sends the server's alert after the client's handshake
		// completes, so the client sees either the alert or a closed pipe.
		neverConnects(t, nc, logs, "tls")
	})
	t.Run("refused with a certificate another CA signed", func(t *testing.T) {
		nc, logs := agentConnect(t, srv, srv.ClientURL(), natsbus.TLSFiles{CAFile: pki.CAFile, CertFile: pki.OtherClientCert, KeyFile: pki.OtherClientKey})
		// Go's client withholds a certificate the server's CA list does not
		// name, so the server sees none; either way it refuses.
		neverConnects(t, nc, logs, "tls")
	})
}

// Broken TLS files fail Connect at once, naming the file and the reason
// and never printing a key.
func TestConnectTLSFileErrors(t *testing.T) {
	pki := tlstest.New(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a certificate"), 0o600))
	otherKey, err := os.ReadFile(pki.OtherClientKey)
	require.NoError(t, err)
	missing := filepath.Join(t.TempDir(), "missing.crt")

	for _, tt := range []struct {
		name     string
		files    natsbus.TLSFiles
		mentions []string
	}{
		{"missing CA", natsbus.TLSFiles{CAFile: missing}, []string{"CA file", missing, "no such file"}},
		{"CA without PEM", natsbus.TLSFiles{CAFile: garbage}, []string{"CA file " + garbage, "no PEM certificate"}},
		{"cert without key", natsbus.TLSFiles{CertFile: pki.ClientCert}, []string{"both a certificate file and a key file"}},
		{"key without cert", natsbus.TLSFiles{KeyFile: pki.ClientKey}, []string{"both a certificate file and a key file"}},
		{"missing key", natsbus.TLSFiles{CertFile: pki.ClientCert, KeyFile: missing}, []string{"client key file", missing}},
		{"key of another certificate", natsbus.TLSFiles{CertFile: pki.ClientCert, KeyFile: pki.OtherClientKey},
			[]string{pki.ClientCert, pki.OtherClientKey, "private key does not match public key"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := natsbus.Connect(context.Background(), natsbus.Options{URL: "tls://127.0.0.1:1", Cluster: "c1", TLS: tt.files})
			require.ErrorIs(t, err, natsbus.ErrTLSFiles)
			for _, m := range tt.mentions {
				assert.Contains(t, err.Error(), m)
			}
			assert.NotContains(t, err.Error(), "PRIVATE KEY")
			assert.NotContains(t, err.Error(), strings.Split(string(otherKey), "\n")[1])
		})
	}
}
