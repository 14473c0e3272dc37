//go:build integration

package jobrun_integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
		e.logs.Write(out) // scanned for credential values at cleanup
		if ee, ok := err.(*exec.ExitError); ok {
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

	// A connection into a namespace that does not exist fails the run.
	bad := e.secretChange("nowhere")
	bad.Spec.Scope = "no-such-namespace"
	e.apply(bad)
	code, logs = runJob("--render-all")
	assert.Equal(t, 1, code, logs)
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	summary := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "sc-job: ") {
			summary = l
		}
	}
	assert.Equal(t, `sc-job: 1 connection rendered, 0 deleted, 1 failed: connection "nowhere" failed at step check-namespace: `+
		`target namespace does not exist: namespace "no-such-namespace" not found (ErrNamespaceMissing)`, summary)
	assert.Equal(t, connection.PhaseFailed, e.get("nowhere").Status.Phase)

	// --log-format=json: every line, client-go's included, is one JSON
	// object, and the summary is the last entry's message.
	code, logs = runJob("--render-all", "--log-format=json")
	assert.Equal(t, 1, code, logs)
	var last map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		last = nil
		require.NoError(t, json.Unmarshal([]byte(l), &last), "not JSON: %q", l)
	}
	assert.Equal(t, "summary", last["step"])
	assert.Equal(t, summary, last["message"])
	assert.Equal(t, connection.PhaseSucceeded, e.get("db1").Status.Phase, "re-rendered by --render-all")
}
