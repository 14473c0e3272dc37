//go:build e2e

package e2e

// This file runs last (go test runs files in name order): it scans what the
// whole suite produced, then uninstalls.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// TestNoCredentialLeaked scans every ConfigMap, Event, Job and Deployment
// spec and every sc-system pod log for each credential value the suite sent.
func TestNoCredentialLeaked(t *testing.T) {
	e := product(t)
	require.NotEmpty(t, credValues, "the suite sent credentials")
	ctx := context.Background()
	cs := e.cluster.Clientset
	var haystack []string
	add := func(what string, v any) {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		haystack = append(haystack, what+": "+string(b))
	}
	cms, err := cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	add("configmaps", cms.Items)
	evs, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	add("events", evs.Items)
	jobs, err := cs.BatchV1().Jobs("").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	add("jobs", jobs.Items)
	deps, err := cs.AppsV1().Deployments(systemNS).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	add("deployments", deps.Items)
	pods, err := cs.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	add("pods", pods.Items)
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			b, err := cs.CoreV1().Pods(systemNS).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name}).DoRaw(ctx)
			if err == nil {
				haystack = append(haystack, "log "+p.Name+": "+string(b))
			}
		}
	}
	scanned := 0
	for _, h := range haystack {
		scanned += len(h)
		for _, v := range credValues {
			if strings.Contains(h, v) {
				t.Errorf("credential value %s… leaked into %s", v[:14], h[:min(len(h), 60)])
			}
		}
	}
	t.Logf("scanned %d bytes of API objects and logs for %d credential values", scanned, len(credValues))
}

// TestUninstallKeepsWhatItSaid: helm uninstall removes the agent and keeps
// connection records and rendered objects, as NOTES.txt says.
func TestUninstallKeepsWhatItSaid(t *testing.T) {
	e := product(t)
	ctx := context.Background()
	cs := e.cluster.Clientset
	ns := e.targetNamespace(t)
	// service principal: a credential record and a rendered Secret; workload
	// identity would add the ServiceAccount but has no credentials
	spec, creds := buildSpec(t, uniq("survivor"), ns, catalog.TargetStorageBlob, catalog.AuthServicePrincipal, blobID)
	require.Equal(t, connection.PhaseSucceeded, e.apply(t, protocol.OpCreate, spec, creds).Phase)

	runHelm(t, e.cluster.Kubeconfig, "uninstall", release, "-n", systemNS, "--wait", "--timeout", "2m")
	e.uninstalled = true
	t.Cleanup(func() {
		// What uninstall kept on purpose would outlive the test namespace and
		// fail every later render (a later `make demo`'s install hook included).
		_ = cs.CoreV1().ConfigMaps(systemNS).Delete(context.Background(), connection.ConfigMapName(uniq("survivor")), metav1.DeleteOptions{})
		_ = cs.CoreV1().Secrets(systemNS).Delete(context.Background(), connection.CredentialSecretName(uniq("survivor")), metav1.DeleteOptions{})
	})

	_, err := cs.AppsV1().Deployments(systemNS).Get(ctx, "sc-agent", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "agent Deployment removed: %v", err)
	_, err = cs.CoreV1().ConfigMaps(systemNS).Get(ctx, connection.ConfigMapName(uniq("survivor")), metav1.GetOptions{})
	assert.NoError(t, err, "connection record kept")
	_, err = cs.CoreV1().Secrets(systemNS).Get(ctx, connection.CredentialSecretName(uniq("survivor")), metav1.GetOptions{})
	assert.NoError(t, err, "credential record kept")
	_, err = getSecret(ctx, cs, ns, connection.SecretName(uniq("survivor")))
	assert.NoError(t, err, "rendered Secret kept")
}
