//go:build integration

package jobrun_integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
)

// The sc-job binary takes the namespace policy from the flags the launcher
// and the Helm hook pass: a stored record in a namespace they deny is
// Failed/NamespaceDenied and its namespace stays untouched; the same record
// renders once the flags allow it.
func TestBinaryRefusesRecordInDeniedNamespace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sc-job binary")
	}
	e := setup(t)
	bin := filepath.Join(t.TempDir(), "sc-job")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/sc-extension/sc-extension/job").CombinedOutput()
	require.NoError(t, err, string(out))
	kubeconfig := kubetest.Kubeconfig(t)
	runJob := func(args ...string) (int, string) {
		cmd := exec.Command(bin, append([]string{"--kubeconfig=" + kubeconfig, "--namespace=" + e.sys, "--job-name="}, args...)...)
		cmd.Env = append(os.Environ(), "POD_NAME=sc-job-policy-test")
		out, err := cmd.CombinedOutput()
		_, _ = e.logs.Write(out)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		require.NoError(t, err)
		return 0, string(out)
	}
	secretGone := func() bool {
		_, err := e.client.CoreV1().Secrets(e.target).Get(e.ctx, "sc-db1-secret", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}

	e.apply(e.secretChange("db1"))
	code, logs := runJob("--denied-namespaces=" + e.target)
	assert.Equal(t, 1, code, "a new permanent failure fails the run: %s", logs)
	c := e.get("db1")
	assert.Equal(t, connection.PhaseFailed, c.Status.Phase)
	assert.Equal(t, namespaces.ReasonDenied, c.Status.Reason)
	assert.Equal(t, `connection "db1" failed at step check-namespace: namespace not allowed: "`+e.target+`" is in deniedNamespaces`, c.Status.Message)
	assert.True(t, secretGone(), "nothing rendered into the denied namespace")

	// The watch list refuses it too (the record is due again after a re-send).
	e.apply(e.secretChange("db1"))
	code, logs = runJob("--watch-namespaces=elsewhere")
	assert.Equal(t, 1, code, logs)
	assert.Contains(t, e.get("db1").Status.Message, `"`+e.target+`" is not in watchNamespaces (elsewhere)`)
	assert.True(t, secretGone())

	code, logs = runJob("--watch-namespaces=Not_A_Namespace")
	assert.Equal(t, 2, code, "an invalid list is a usage error: %s", logs)
	assert.Contains(t, logs, `watchNamespaces: "Not_A_Namespace" is not a namespace name`)

	// Allowed: the re-sent record renders.
	e.apply(e.secretChange("db1"))
	code, logs = runJob("--watch-namespaces=" + e.target)
	assert.Equal(t, 0, code, logs)
	assert.Equal(t, connection.PhaseSucceeded, e.get("db1").Status.Phase)
	assert.False(t, secretGone())
}
