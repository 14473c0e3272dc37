//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/e2e/testbed/helmrelease"
)

// repoRoot finds the module root so the suite works from any working directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "go.mod not found above the test directory")
		dir = parent
	}
}

// helmBin is the real helm CLI: $HELM, else the one `make tools` builds into bin/.
func helmBin(t testing.TB) string {
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	p := filepath.Join(repoRoot(t), "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm CLI not found at %s: run make tools", p)
	}
	return p
}

// helmRunner runs helm against the cluster, for helmrelease.
func helmRunner(kubeconfig, bin string) helmrelease.Helm {
	return func(_ context.Context, args ...string) (string, error) { return tryHelm(kubeconfig, bin, args...) }
}

// runHelm runs the helm CLI and returns its combined output; it fails the test on error.
func runHelm(t testing.TB, kubeconfig string, args ...string) string {
	t.Helper()
	out, err := tryHelm(kubeconfig, helmBin(t), args...)
	require.NoError(t, err, "helm %s:\n%s", strings.Join(args, " "), out)
	return out
}

func tryHelm(kubeconfig, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HELM_CACHE_HOME="+os.TempDir()+"/sc-e2e-helm-cache",
		"HELM_CONFIG_HOME="+os.TempDir()+"/sc-e2e-helm-config", "HELM_DATA_HOME="+os.TempDir()+"/sc-e2e-helm-data")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// eventually polls cond against the API until it holds; the poll is the
// synchronisation, so no test sleeps.
func eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil {
			last = err
			return false, nil
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, last)
	}
}

func getSecret(ctx context.Context, cs kubernetes.Interface, ns, name string) (*corev1.Secret, error) {
	return cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

// jobGone reports whether the Job no longer exists.
func jobGone(ctx context.Context, cs kubernetes.Interface, ns, name string) (bool, error) {
	_, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

func jobFailed(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// jobLogs returns what `kubectl logs job/NAME` shows: the log of the Job's newest pod.
func jobLogs(ctx context.Context, cs kubernetes.Interface, ns, job string) (string, error) {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job})
	if err != nil {
		return "", err
	}
	if len(pods.Items) == 0 {
		return "", fmt.Errorf("no pod for job %s/%s", ns, job)
	}
	newest := pods.Items[0]
	for _, p := range pods.Items[1:] {
		if p.CreationTimestamp.After(newest.CreationTimestamp.Time) {
			newest = p
		}
	}
	b, err := cs.CoreV1().Pods(ns).GetLogs(newest.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	return string(b), err
}
