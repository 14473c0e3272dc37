package chart

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/sc-extension/sc-extension/internal/testkit/charttest"
)

const releaseNamespace = "sc-system"

// rendered is one helm install's output (see charttest.Rendered).
type rendered struct {
	objects []runtime.Object
	notes   string
	raw     string
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := charttest.Load()
	require.NoError(t, err)
	return c
}

// minimal is the least a user must set.
func minimal() map[string]any {
	return map[string]any{
		"cluster": map[string]any{"id": "c1"},
		"nats":    map[string]any{"url": "nats://10.0.0.5:4222"},
	}
}

// with returns minimal() with dotted paths overridden, like --set.
func with(sets map[string]any) map[string]any {
	v := minimal()
	for path, val := range sets {
		parts := strings.Split(path, ".")
		m := v
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = val
	}
	return v
}

// values coalesces and validates against values.schema.json, as helm install does.
func values(t *testing.T, c *chart.Chart, user map[string]any) (chartutil.Values, error) {
	t.Helper()
	return charttest.Values(c, user, releaseNamespace, true)
}

func render(t *testing.T, user map[string]any) rendered {
	t.Helper()
	c := loadChart(t)
	vals, err := values(t, c, user)
	require.NoError(t, err)
	return renderValues(t, c, vals)
}

func renderValues(t *testing.T, c *chart.Chart, vals chartutil.Values) rendered {
	t.Helper()
	r, err := charttest.RenderValues(c, vals)
	require.NoError(t, err)
	return rendered{objects: r.Objects, notes: r.Notes, raw: r.Raw}
}

// find returns the single object of type T named name.
func find[T runtime.Object](t *testing.T, r rendered, name string) T {
	t.Helper()
	var found []T
	for _, o := range r.objects {
		if typed, ok := o.(T); ok && objectName(o) == name {
			found = append(found, typed)
		}
	}
	require.Len(t, found, 1, "want exactly one %T named %s", *new(T), name)
	return found[0]
}

func all[T runtime.Object](r rendered) []T {
	var out []T
	for _, o := range r.objects {
		if typed, ok := o.(T); ok {
			out = append(out, typed)
		}
	}
	return out
}

func objectName(o runtime.Object) string { return charttest.Name(o) }
