package chart

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sc-extension/sc-extension/internal/testkit/charttest"
)

const serviceMonitorAPI = "monitoring.coreos.com/v1/ServiceMonitor"

func serviceMonitors(r rendered) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range all[*unstructured.Unstructured](r) {
		if u.GetKind() == "ServiceMonitor" {
			out = append(out, u)
		}
	}
	return out
}

// renderWithAPIs renders against a cluster that also serves apiVersions.
func renderWithAPIs(t *testing.T, user map[string]any, apiVersions ...string) (rendered, error) {
	t.Helper()
	c := loadChart(t)
	vals, err := charttest.ValuesWithAPIs(c, user, releaseNamespace, true, apiVersions...)
	require.NoError(t, err)
	r, err := charttest.RenderValues(c, vals)
	return rendered{objects: r.Objects, notes: r.Notes, raw: r.Raw}, err
}

func TestServiceMonitorOffByDefault(t *testing.T) {
	r, err := renderWithAPIs(t, minimal(), serviceMonitorAPI)
	require.NoError(t, err)
	assert.Empty(t, serviceMonitors(r), "not rendered unless enabled, even where the API exists")
}

func TestServiceMonitorScrapesTheAgentService(t *testing.T) {
	r, err := renderWithAPIs(t, with(map[string]any{
		"metrics.serviceMonitor.enabled":  true,
		"metrics.serviceMonitor.interval": "15s",
		"metrics.serviceMonitor.labels":   map[string]any{"release": "kube-prometheus-stack"},
		"metrics.port":                    9090,
	}), serviceMonitorAPI)
	require.NoError(t, err)
	sms := serviceMonitors(r)
	require.Len(t, sms, 1)
	sm := sms[0]
	assert.Equal(t, "monitoring.coreos.com/v1", sm.GetAPIVersion())
	assert.Equal(t, "sc-agent", sm.GetName())
	assert.Equal(t, releaseNamespace, sm.GetNamespace())
	assert.Equal(t, "kube-prometheus-stack", sm.GetLabels()["release"])
	assert.Equal(t, "Helm", sm.GetLabels()["app.kubernetes.io/managed-by"])

	endpoints, _, err := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	require.NoError(t, err)
	assert.Equal(t, []any{map[string]any{"port": "http", "path": "/metrics", "interval": "15s"}}, endpoints)
	ns, _, _ := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames")
	assert.Equal(t, []string{releaseNamespace}, ns)

	// The endpoint names a port the Service has, and the selector picks that
	// Service, whose port leads to the container port serving /metrics.
	svc := find[*corev1.Service](t, r, "sc-agent")
	require.Len(t, svc.Spec.Ports, 1)
	assert.Equal(t, "http", svc.Spec.Ports[0].Name)
	assert.EqualValues(t, 9090, svc.Spec.Ports[0].Port)
	selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	require.NotEmpty(t, selector)
	for k, v := range selector {
		assert.Equal(t, v, svc.Labels[k], "Service label %s", k)
	}
	assert.Equal(t, 3, assertRestricted(t, r))
}

// Without the CRD the install fails saying what to do, instead of the API
// server's "no matches for kind"; force renders it for offline templating.
func TestServiceMonitorNeedsTheAPIOrForce(t *testing.T) {
	enabled := with(map[string]any{"metrics.serviceMonitor.enabled": true})
	_, err := renderWithAPIs(t, enabled)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not serve monitoring.coreos.com/v1 ServiceMonitor")
	assert.Contains(t, err.Error(), "metrics.serviceMonitor.force=true")

	r, err := renderWithAPIs(t, with(map[string]any{"metrics.serviceMonitor.enabled": true, "metrics.serviceMonitor.force": true}))
	require.NoError(t, err)
	assert.Len(t, serviceMonitors(r), 1)

	_, err = renderWithAPIs(t, with(map[string]any{"metrics.serviceMonitor.enabled": true, "metrics.enabled": false}), serviceMonitorAPI)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "metrics.serviceMonitor.enabled needs metrics.enabled=true")
}
