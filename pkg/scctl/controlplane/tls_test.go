package controlplane_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/tlstest"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
)

// scctl fails at once against a TLS server it cannot verify or that wants
// a client certificate it lacks, saying why; with the right files it works.
func TestDialTLS(t *testing.T) {
	pki := tlstest.New(t)
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{cluster},
		TLS: devserver.TLSOptions{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile}})
	admin := srv.Admin()
	dial := func(files natsbus.TLSFiles) (*controlplane.Client, error) {
		return controlplane.Dial(context.Background(), controlplane.Options{URL: srv.ClientURL(), User: admin.User,
			Password: admin.Password, Cluster: cluster, Timeout: 2 * time.Second, TLS: files})
	}

	c, err := dial(natsbus.TLSFiles{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey})
	require.NoError(t, err)
	_, err = c.LatestHeartbeat(context.Background())
	require.ErrorIs(t, err, controlplane.ErrNoHeartbeat, "a JetStream read over TLS reaches the stream")
	c.Close()

	_, err = dial(natsbus.TLSFiles{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate signed by unknown authority")
	assert.NotErrorIs(t, err, controlplane.ErrServerUnreachable, "a TLS failure is not 'server down'")

	_, err = dial(natsbus.TLSFiles{CAFile: pki.CAFile})
	require.Error(t, err, "the server requires a client certificate")
	t.Logf("without a client certificate: %v", err)
	assert.NotContains(t, err.Error(), admin.Password)
}
