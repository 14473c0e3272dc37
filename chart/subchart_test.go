package chart

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/charttest"
)

// `--set global.foo=1` is accepted (Helm reserves global for values shared
// with subcharts) while every other unknown top-level key still fails.
func TestGlobalAccepted(t *testing.T) {
	r := render(t, with(map[string]any{"global.foo": 1}))
	find[*appsv1.Deployment](t, r, "sc-agent")

	_, err := values(t, loadChart(t), with(map[string]any{"global.foo": 1, "globals": map[string]any{"foo": 1}}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "additional properties 'globals' not allowed")
}

// As a dependency of an umbrella chart, Helm hands the chart its own values
// plus the parent's globals and validates them against this schema.
func TestRendersAsSubchart(t *testing.T) {
	sub := loadChart(t)
	parent := &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "umbrella", Version: "1.0.0"},
		Values:   map[string]any{},
	}
	parent.AddDependency(sub)
	user := map[string]any{
		"global":       map[string]any{"imageRegistry": "myregistry.azurecr.io", "foo": 1},
		"sc-extension": minimal(),
	}
	vals, err := charttest.Values(parent, user, releaseNamespace, true)
	require.NoError(t, err)
	r := renderValues(t, parent, vals)
	d := find[*appsv1.Deployment](t, r, "sc-agent")
	assert.Equal(t, "c1", argMap(d.Spec.Template.Spec.Containers[0].Args)["--cluster"])

	// The subchart's schema still applies inside the umbrella.
	user["sc-extension"] = with(map[string]any{"replicas": 2})
	_, err = charttest.Values(parent, user, releaseNamespace, true)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "additional properties 'replicas' not allowed")
}
