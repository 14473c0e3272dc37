//go:build integration

package jobrun_integration

import (
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
	assert.Contains(t, logs, "sc-job: 1 connection rendered, 0 deleted, 0 failed")
	assert.Contains(t, logs, `"step":"claim"`, "JSON log lines with stable field names")

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
	assert.Equal(t, connection.PhaseSucceeded, e.get("db1").Status.Phase, "re-rendered by --render-all")
}
