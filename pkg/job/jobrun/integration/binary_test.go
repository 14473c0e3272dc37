//go:build integration

package jobrun_integration

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// The sc-job binary itself, run with --kubeconfig as a user would outside
// a cluster: its exit code and what `kubectl logs` would show.
func TestBinaryExitCodesAndSummary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sc-job binary")
	}
	e := setup(t)
	bin := filepath.Join(t.TempDir(), "sc-job")
	build := exec.Command("go", "build", "-o", bin, "github.com/sc-extension/sc-extension/job")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))
	kubeconfig := kubetest.Kubeconfig(t)

	runJob := func(args ...string) (int, string) {
		cmd := exec.Command(bin, append([]string{"--kubeconfig=" + kubeconfig, "--namespace=" + e.sys}, args...)...)
		cmd.Env = append(os.Environ(), "POD_NAME=sc-job-binary-test")
		out, err := cmd.CombinedOutput()
		_, _ = e.logs.Write(out) // scanned for credential values at cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		require.NoError(t, err)
		return 0, string(out)
	}

	e.apply(e.secretChange("db1"))
	code, logs := runJob()
	assert.Equal(t, 0, code, logs)
	assert.Contains(t, logs, `connection "db1": rendered Secret `+e.target+`/sc-db1-secret (created)`, "text by default: a line per step")
	assert.True(t, strings.HasSuffix(logs, "sc-job: 1 connection rendered, 0 deleted, 0 failed\n"), "ends with the plain summary: %s", logs)

	// A connection into a namespace that does not exist waits for it: the
	// run still succeeds.
	bad := e.secretChange("nowhere")
	bad.Spec.Scope = "no-such-namespace"
	e.apply(bad)
	code, logs = runJob()
	assert.Equal(t, 0, code, logs)
	assert.Equal(t, `sc-job: 0 connections rendered, 0 deleted, 0 failed; 1 waiting for their namespace: connection "nowhere" waits for its namespace: `+
		`target namespace does not exist: namespace "no-such-namespace" not found`, summaryOf(logs))
	assert.Equal(t, connection.ReasonNamespaceNotFound, e.get("nowhere").Status.Reason)

	// A Secret someone else owns fails the run that finds it...
	_, err = e.client.CoreV1().Secrets(e.target).Create(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.target, Name: "sc-owned-secret"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	e.apply(e.secretChange("owned"))
	code, logs = runJob("--render-all")
	assert.Equal(t, 1, code, logs)
	summary := summaryOf(logs)
	assert.True(t, strings.HasPrefix(summary, `sc-job: 1 connection rendered, 0 deleted, 1 failed: connection "owned" failed at step apply-secret: `+
		`Secret `+e.target+`/sc-owned-secret exists and is not managed by sc-extension (ErrSecretIsOwned); 1 still failing from earlier runs: "nowhere" since `), summary)
	assert.Equal(t, connection.PhaseFailed, e.get("owned").Status.Phase)

	// ...but not the next one, where it fails the same way again (the
	// Helm hook's --render-all retries it). --log-format=json: every line,
	// client-go's included, is one JSON object, and the summary is the last
	// entry's message.
	code, logs = runJob("--render-all", "--log-format=json")
	assert.Equal(t, 0, code, logs)
	var last map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		last = nil
		require.NoError(t, json.Unmarshal([]byte(l), &last), "not JSON: %q", l)
	}
	assert.Equal(t, "summary", last["step"])
	assert.Contains(t, last["message"], `sc-job: 1 connection rendered, 0 deleted, 0 failed; 2 still failing from earlier runs: "nowhere" since `)
	assert.Equal(t, float64(2), last["stillFailing"])
	owned := e.get("owned")
	assert.Equal(t, connection.PhaseFailed, owned.Status.Phase)
	assert.Equal(t, 2, owned.Status.Attempts)
	assert.Equal(t, "sc-job-binary-test", owned.Status.LastFailure.Run)
	assert.Equal(t, connection.PhaseSucceeded, e.get("db1").Status.Phase, "re-rendered by --render-all")

	// The Helm hook reports a new failure in the connection's status and
	// exits 0: a tenant's connection never fails helm upgrade.
	_, err = e.client.CoreV1().Secrets(e.target).Create(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.target, Name: "sc-taken-secret"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	e.apply(e.secretChange("taken"))
	code, logs = runJob("--render-all", "--connection-failures=report")
	assert.Equal(t, 0, code, logs)
	assert.Contains(t, summaryOf(logs), `connection "taken" failed at step apply-secret`)
	assert.Equal(t, connection.PhaseFailed, e.get("taken").Status.Phase)
	code, _ = runJob("--connection-failures=sometimes")
	assert.Equal(t, 2, code, "an unknown mode is a usage error")
}

// summaryOf is the plain summary line of a text-mode log.
func summaryOf(logs string) string {
	summary := ""
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.HasPrefix(l, "sc-job: ") {
			summary = l
		}
	}
	return summary
}
