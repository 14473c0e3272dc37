//go:build integration

package agent_integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/internal/testkit/tlstest"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
)

// startAgent runs the binary against srv with extra flags and returns its
// health address and output.
func startAgent(t *testing.T, bin string, srv *devserver.Server, extra ...string) (string, *devservertest.LogBuffer) {
	t.Helper()
	ns := kubetest.Namespace(t, kubetest.Prefix("sc-system-"))
	agentUser, ok := srv.Cluster(cluster)
	require.True(t, ok)
	healthAddr := freeAddr(t)
	logs := &devservertest.LogBuffer{}
	cmd := exec.Command(bin, append([]string{
		"--cluster=" + cluster, "--namespace=" + ns, "--kubeconfig=" + kubetest.Kubeconfig(t),
		"--nats-url=" + srv.ClientURL(), "--metrics-addr=" + healthAddr, "--log-level=debug",
		"--job-image=localhost/sc-extension/job:dev", "--heartbeat-interval=1s",
	}, extra...)...)
	cmd.Env = append(os.Environ(), "POD_NAME=sc-agent-tls-0",
		"SC_NATS_USER="+agentUser.User, "SC_NATS_PASSWORD="+agentUser.Password)
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("agent output:\n%s", logs.String())
		}
	})
	return healthAddr, logs
}

// The agent binary connects over TLS with its CA bundle and client
// certificate flags, and is not ready (saying why) without a certificate
// the server accepts.
func TestAgentNATSOverTLS(t *testing.T) {
	bin := buildAgent(t)
	kubetest.New(t)
	pki := tlstest.New(t)
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{cluster},
		TLS: devserver.TLSOptions{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	key, err := os.ReadFile(pki.ClientKey)
	require.NoError(t, err)

	t.Run("with CA and client certificate", func(t *testing.T) {
		healthAddr, logs := startAgent(t, bin, srv,
			"--nats-ca-file="+pki.CAFile, "--nats-cert-file="+pki.ClientCert, "--nats-key-file="+pki.ClientKey)
		require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			out, err := httpGet(ctx, "http://"+healthAddr+"/readyz")
			return err == nil && strings.Contains(out, "readyz check passed"), nil
		}), "agent never became ready")

		admin := srv.Admin()
		cp, err := controlplane.Dial(ctx, controlplane.Options{URL: srv.ClientURL(), User: admin.User, Password: admin.Password,
			Cluster: cluster, Timeout: 5 * time.Second,
			TLS: natsbus.TLSFiles{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}})
		require.NoError(t, err)
		defer cp.Close()
		require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			hb, err := cp.LatestHeartbeat(ctx)
			return err == nil && hb.Pod == "sc-agent-tls-0", nil
		}), "a heartbeat over TLS")
		assert.Contains(t, logs.String(), `"natsTLS":"client certificate `+pki.ClientCert+`"`)
		assert.NotContains(t, logs.String(), string(key))
	})

	t.Run("without a client certificate", func(t *testing.T) {
		healthAddr, logs := startAgent(t, bin, srv, "--nats-ca-file="+pki.CAFile)
		require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			return strings.Contains(logs.String(), "connecting to NATS failed; retrying"), nil
		}), "the failed TLS dial is logged")
		out, err := httpGet(ctx, "http://"+healthAddr+"/readyz")
		require.Error(t, err)
		assert.Contains(t, out, "not connected to NATS")
	})

	t.Run("a missing CA file stops the agent at start", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "ca.crt")
		out, err := exec.CommandContext(ctx, bin, "--cluster="+cluster, "--nats-url="+srv.ClientURL(),
			"--job-image=img", "--nats-ca-file="+missing).CombinedOutput()
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit), "%v: %s", err, out)
		assert.Equal(t, 2, exit.ExitCode())
		assert.Contains(t, string(out), "--nats-ca-file")
		assert.Contains(t, string(out), missing)
	})
}
