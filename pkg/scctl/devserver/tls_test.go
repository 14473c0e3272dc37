package devserver_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/tlstest"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

func TestTLSOptionsAreCheckedByName(t *testing.T) {
	pki := tlstest.New(t)
	missing := filepath.Join(t.TempDir(), "missing.key")
	for _, tt := range []struct {
		name     string
		tls      devserver.TLSOptions
		mentions []string
	}{
		{"cert without key", devserver.TLSOptions{CertFile: pki.ServerCert}, []string{"both a certificate file and a key file", pki.ServerCert}},
		{"client CA without cert", devserver.TLSOptions{ClientCAFile: pki.CAFile}, []string{"needs a server certificate", pki.CAFile}},
		{"missing key", devserver.TLSOptions{CertFile: pki.ServerCert, KeyFile: missing}, []string{missing}},
		{"key of another certificate", devserver.TLSOptions{CertFile: pki.ServerCert, KeyFile: pki.ClientKey}, []string{pki.ClientKey, "private key does not match"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := devserver.Start(context.Background(), devserver.Options{StoreDir: t.TempDir(), TLS: tt.tls})
			require.ErrorIs(t, err, devserver.ErrTLSOptions)
			for _, m := range tt.mentions {
				assert.Contains(t, err.Error(), m)
			}
			assert.NotContains(t, err.Error(), "PRIVATE KEY")
		})
	}
}

// With a client CA the server verifies clients, and it still provisions
// its streams (in process) and survives a restart.
func TestTLSServerWithClientVerification(t *testing.T) {
	pki := tlstest.New(t)
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"},
		TLS: devserver.TLSOptions{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile}})
	assert.True(t, strings.HasPrefix(srv.AdminURL(), "tls://admin:"), "AdminURL carries the tls scheme")
	assert.Equal(t, pki.CAFile, srv.TLS().ClientCAFile)
	admin := srv.Admin()
	dial := func(opts ...nats.Option) error {
		nc, err := nats.Connect(srv.ClientURL(), append(opts, nats.UserInfo(admin.User, admin.Password), nats.NoReconnect())...)
		if err == nil {
			nc.Close()
		}
		return err
	}
	require.NoError(t, dial(nats.RootCAs(pki.CAFile), nats.ClientCert(pki.ClientCert, pki.ClientKey)))
	require.Error(t, dial(nats.RootCAs(pki.CAFile)), "no client certificate")
	require.NoError(t, srv.Restart(context.Background()))
	require.NoError(t, dial(nats.RootCAs(pki.CAFile), nats.ClientCert(pki.ClientCert, pki.ClientKey)))
}
