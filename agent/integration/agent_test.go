//go:build integration

// Package agent_integration runs the sc-agent binary as a black box against
// a real API server (e2e/testbed api mode) and a real embedded NATS server:
// a request from the control plane becomes a record and a Job sc-job, a
// status written as sc-job would reaches the control plane, and SIGTERM
// stops the agent cleanly and releases its Lease.
package agent_integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/e2e/testbed"
	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/job/jobrun"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

const cluster = "c1"

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

func buildAgent(t *testing.T) string {
	t.Helper()
	root, err := testbed.RepoRoot()
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "sc-agent")
	cmd := exec.Command("go", "build", "-o", bin, "./agent")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./agent: %s", out)
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func TestAgentEndToEnd(t *testing.T) {
	bin := buildAgent(t)
	client := kubetest.New(t, kubetest.QPS(100, 200)).Clientset
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns := kubetest.Namespace(t, kubetest.Prefix("sc-system-"))

	srv := devservertest.Start(t, devserver.Options{Clusters: []string{cluster}})
	agentUser, ok := srv.Cluster(cluster)
	require.True(t, ok)

	healthAddr := freeAddr(t)
	logs := &devservertest.LogBuffer{}
	cmd := exec.Command(bin,
		"--cluster="+cluster, "--namespace="+ns, "--kubeconfig="+kubetest.Kubeconfig(t),
		"--nats-url="+srv.ClientURL(), "--metrics-addr="+healthAddr, "--log-level=debug",
		"--job-image=localhost/sc-extension/job:dev", "--job-keep-failed-for=1h", "--heartbeat-interval=1s",
		`--job-tolerations=[{"key":"CriticalAddonsOnly","operator":"Exists"}]`,
	)
	cmd.Env = append(os.Environ(), "POD_NAME=sc-agent-test-0",
		"SC_NATS_USER="+agentUser.User, "SC_NATS_PASSWORD="+agentUser.Password)
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("agent output:\n%s", logs.String())
		}
	})

	// Ready once the key is loaded, NATS is connected and (as the only
	// replica, hence leader) its informers have synced.
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		out, err := httpGet(ctx, "http://"+healthAddr+"/readyz")
		return err == nil && strings.Contains(out, "readyz check passed"), nil
	}), "agent never became ready")

	// A create from the control plane, with a credential value.
	cp := devservertest.ControlPlane(t, srv, cluster, 5*time.Second)
	secret := fmt.Sprintf("cred-VALUE-%d", rand.Uint64())
	key := "AZURE_STORAGEBLOB_CONNECTIONSTRING"
	spec := connection.Spec{
		Name: "blob_1", Scope: "default",
		TargetService:  connection.TargetService{Type: "storage-blob", ID: "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"},
		AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
		ClientType:     "none",
		Configurations: []connection.Configuration{{Name: key, Credential: true}},
	}
	reqID, err := cp.Create(ctx, spec, connection.Credentials{key: secret})
	require.NoError(t, err)
	id := connection.ObjectID(spec.Name)

	// The launcher starts sc-job for it.
	var jobJSON string
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		j, err := client.BatchV1().Jobs(ns).Get(ctx, "sc-job", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		jobJSON = fmt.Sprintf("%+v", j.Spec)
		return true, nil
	}), "no Job sc-job")
	assert.NotContains(t, jobJSON, secret)

	// sc-job's part, by the real sc-job logic in-process (the API-only
	// server runs no pods): it renders the Secret, so drift has nothing to
	// repair, and reports Succeeded.
	runner, err := jobrun.New(jobrun.Config{Client: client, Namespace: ns, Instance: "agent-integration", Log: zerolog.Nop(), Summary: io.Discard})
	require.NoError(t, err)
	_, err = runner.Run(ctx)
	require.NoError(t, err)
	_, err = client.CoreV1().Secrets("default").Get(ctx, connection.SecretName(id), metav1.GetOptions{})
	require.NoError(t, err, "sc-job rendered the connection's Secret")
	waitCtx, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	defer cancelWait()
	ev, err := cp.Wait(waitCtx, spec.Name, reqID, nil)
	require.NoError(t, err)
	assert.Equal(t, connection.PhaseSucceeded, ev.Phase)

	// Queries are answered.
	var view protocol.ConnectionView
	require.NoError(t, cp.Query(ctx, protocol.Query{Header: protocol.NewHeader(protocol.KindQuery), Verb: protocol.VerbShow, Connection: spec.Name}, &view))
	assert.Equal(t, connection.PhaseSucceeded, view.Status.Phase)

	// Heartbeats say leader.
	hb, err := cp.LatestHeartbeat(ctx)
	require.NoError(t, err)
	assert.True(t, hb.Leader)
	assert.Equal(t, "sc-agent-test-0", hb.Pod)

	// Metrics.
	out, err := httpGet(ctx, "http://"+healthAddr+"/metrics")
	require.NoError(t, err)
	assert.Contains(t, out, `sc_agent_requests_processed_total{outcome="applied"} 1`)
	assert.Contains(t, out, `sc_agent_jobs_launched_total{reason="new"} 1`)
	assert.Contains(t, out, "sc_agent_leader 1")
	// The leader's term wires the intake's own metrics and the workqueue provider.
	assert.Contains(t, out, `sc_agent_request_duration_seconds_count{outcome="acked"} 1`)
	assert.Contains(t, out, "sc_agent_requests_held 0")
	assert.Contains(t, out, `workqueue_adds_total{name="intake"} 1`)

	// SIGTERM: clean exit, Lease released.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "agent exit status")
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop on SIGTERM")
	}
	lease, err := client.CoordinationV1().Leases(ns).Get(ctx, "sc-agent", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "", ptr.Deref(lease.Spec.HolderIdentity, ""), "Lease released on shutdown")

	// One log format: every line the agent printed, client-go's leader
	// election (klog) included, is a JSON object.
	var klogSeen bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), "not a JSON line: %q", line)
		if m, _ := entry["message"].(string); strings.Contains(m, "leader lease") {
			klogSeen = true
		}
	}
	assert.True(t, klogSeen, "client-go's leader election lines reach the JSON log")

	// The credential never reached the agent's logs or any Event.
	assert.NotContains(t, logs.String(), secret)
	assert.NotContains(t, logs.String(), agentUser.Password, "NATS password never logged")
	events, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.NotEmpty(t, events.Items, "the launcher recorded Events")
	assert.NotContains(t, fmt.Sprintf("%+v", events.Items), secret)
	cms, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.NotContains(t, fmt.Sprintf("%+v", cms.Items), secret)
}

func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}
