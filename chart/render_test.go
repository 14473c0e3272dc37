package chart

import (
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
)

const releaseNamespace = "sc-system"

// rendered is one helm install's output, decoded strictly into typed
// objects so that a misspelt field in a template fails the test.
type rendered struct {
	objects []runtime.Object
	notes   string
	raw     string // every manifest and NOTES, for leak scans
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(".")
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

// values coalesces user values with the chart's defaults and validates them
// against values.schema.json, exactly as helm install does.
func values(t *testing.T, c *chart.Chart, user map[string]any) (chartutil.Values, error) {
	t.Helper()
	return chartutil.ToRenderValues(c, user, chartutil.ReleaseOptions{
		Name: "sc-extension", Namespace: releaseNamespace, Revision: 1, IsInstall: true,
	}, nil)
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
	files, err := engine.Render(c, vals)
	require.NoError(t, err)
	codec := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	var out rendered
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		content := files[name]
		out.raw += content + "\n"
		if strings.HasSuffix(name, "NOTES.txt") {
			out.notes = content
			continue
		}
		for _, doc := range releaseutil.SplitManifests(content) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			obj, _, err := codec.Decode([]byte(doc), nil, nil)
			require.NoError(t, err, "%s does not decode strictly:\n%s", name, doc)
			out.objects = append(out.objects, obj)
		}
	}
	return out
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

func objectName(o runtime.Object) string {
	m, ok := o.(interface{ GetName() string })
	if !ok {
		return ""
	}
	return m.GetName()
}
