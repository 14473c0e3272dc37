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
	records, err := cs.CoreV1().ConfigMaps(systemNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=sc-extension"})
	require.NoError(t, err)
	rendered, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=sc-extension"})
	require.NoError(t, err)

	runHelm(t, e.cluster.Kubeconfig, "uninstall", release, "-n", systemNS, "--wait", "--timeout", "2m")

	_, err = cs.AppsV1().Deployments(systemNS).Get(ctx, "sc-agent", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "agent Deployment removed: %v", err)
	for _, r := range records.Items {
		_, err := cs.CoreV1().ConfigMaps(systemNS).Get(ctx, r.Name, metav1.GetOptions{})
		assert.NoError(t, err, "record %s kept", r.Name)
	}
	for _, s := range rendered.Items {
		if s.Namespace == systemNS {
			continue
		}
		if _, err := cs.CoreV1().Namespaces().Get(ctx, s.Namespace, metav1.GetOptions{}); err != nil {
			continue // the test that owned the namespace removed it
		}
		_, err := cs.CoreV1().Secrets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
		assert.NoError(t, err, "rendered Secret %s/%s kept", s.Namespace, s.Name)
	}
}
