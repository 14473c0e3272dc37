//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/e2e/testbed"
	"github.com/sc-extension/sc-extension/e2e/testbed/previous"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

// The previous release in place of the suite's shared one: what the
// upgrade and mixed-version tests start from.

// previousVersion is the release both tests start from; they build the same
// commit, so the cache entry is shared.
const previousVersion = "v0.1.0"

// previousRelease builds the previous release (cached per commit) and loads
// its images into the local test bed; elsewhere the test is skipped.
func previousRelease(ctx context.Context, t *testing.T) *previous.Release {
	t.Helper()
	if kc := os.Getenv("E2E_KUBECONFIG"); kc != "" {
		t.Skipf("the previous release's images are loaded into the local test bed's containerd; E2E_KUBECONFIG=%s is not it", kc)
	}
	start := time.Now()
	rel, err := previous.Build(ctx, previous.Options{RepoRoot: repoRoot(t), Commit: previous.V010Commit, Version: previousVersion, Logf: t.Logf})
	require.NoError(t, err)
	require.NoError(t, testbed.LoadImages(ctx, testbed.DefaultStateDir(), rel.Images))
	t.Logf("%s built and loaded in %s", previousVersion, time.Since(start).Round(100*time.Millisecond))
	return rel
}

// replaceSharedRelease uninstalls the suite's shared release and installs
// rel with replicas agents in its place. The shared install is restored at
// cleanup, whatever state the test leaves.
func (e *env) replaceSharedRelease(t *testing.T, rel *previous.Release, replicas int) {
	t.Helper()
	t.Cleanup(func() { e.restoreSharedRelease(t) })
	// A warm sc-job of the shared release lingers for more work (job.linger)
	// and would render what the test sends to the previous release: let it
	// end first, so every write the test sees is the previous release's.
	e.awaitNoSCJobRunning(t)
	out, err := tryHelm(e.cluster.Kubeconfig, e.helm, "uninstall", release, "-n", systemNS, "--wait", "--timeout", "2m")
	require.NoError(t, err, "helm uninstall of the shared release:\n%s", out)
	runHelm(t, e.cluster.Kubeconfig, e.previousArgs(rel.Chart, rel.ImageTag, replicas)...)
}

// previousArgs installs the previous release with only the values it
// knows (its schema may refuse newer ones).
func (e *env) previousArgs(chart, tag string, replicas int) []string {
	return []string{"upgrade", "--install", release, chart, "-n", systemNS, "--wait", "--timeout", "3m",
		"--set", "cluster.id=" + clusterID,
		"--set", "nats.url=" + e.podNATSURL,
		"--set", "nats.credentialsSecret=" + devserver.SecretName,
		"--set", "logLevel=debug",
		"--set-string", "podAnnotations." + strings.ReplaceAll(runAnnotation, ".", `\.`) + "=" + runID,
		"--set", "job.keepFailedFor=10m",
		"--set", "image.tag=" + tag,
		"--set", fmt.Sprintf("replicaCount=%d", replicas)}
}

// restoreSharedRelease puts the suite's install back (working tree, one
// replica), from whatever state the test left: upgraded, on the previous
// release, or uninstalled.
func (e *env) restoreSharedRelease(t *testing.T) {
	out, err := tryHelm(e.cluster.Kubeconfig, e.helm, e.helmArgs("upgrade", "--install")...)
	if err != nil {
		// A release whose only revision failed cannot be upgraded.
		t.Logf("restoring the shared release: %v\n%s; reinstalling", err, out)
		_, _ = tryHelm(e.cluster.Kubeconfig, e.helm, "uninstall", release, "-n", systemNS, "--wait", "--timeout", "2m")
		if out, err = tryHelm(e.cluster.Kubeconfig, e.helm, e.helmArgs("upgrade", "--install")...); err != nil {
			t.Errorf("restoring the shared release: %v\n%s", err, out)
			return
		}
	}
	eventually(t, 3*time.Minute, "the shared release's one agent Ready", func(ctx context.Context) (bool, error) {
		d, err := e.cluster.Clientset.AppsV1().Deployments(systemNS).Get(ctx, "sc-agent", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 1 && deploymentReady(d), err
	})
}

// agentImage is the image the agent Deployment runs.
func agentImage(ctx context.Context, t *testing.T, e *env) string {
	t.Helper()
	d, err := e.cluster.Clientset.AppsV1().Deployments(systemNS).Get(ctx, "sc-agent", metav1.GetOptions{})
	require.NoError(t, err)
	return d.Spec.Template.Spec.Containers[0].Image
}

// awaitNoSCJobRunning waits until every sc-job pod has ended: a
// warm run lingers for more work (job.linger), and after a swap of releases
// it would take work meant for the release now installed.
func (e *env) awaitNoSCJobRunning(t *testing.T) {
	t.Helper()
	eventually(t, 2*time.Minute, "no sc-job pod running", func(ctx context.Context) (bool, error) {
		pods, err := e.cluster.Clientset.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + jobName})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				return false, fmt.Errorf("sc-job pod %s is %s", p.Name, p.Status.Phase)
			}
		}
		return true, nil
	})
}
