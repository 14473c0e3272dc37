// Package charttest renders the sc-extension Helm chart the way `helm
// install` would (defaults coalesced, values.schema.json enforced) into typed
// Kubernetes objects, for the chart's unit tests and for integration tests
// that apply the rendered objects to a real API server.
package charttest

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
)

// ReleaseName is the release name the docs use.
const ReleaseName = "sc-extension"

// Rendered is one install's output.
type Rendered struct {
	// Objects are every manifest, hooks and test pods included, decoded
	// strictly: a field the API does not know fails the render.
	Objects []kruntime.Object
	// Hooks maps an object's "Kind/name" to its helm.sh/hook annotation.
	Hooks map[string]string
	Notes string
	// Raw is every manifest and NOTES.txt, for scanning the text itself.
	Raw string
}

// Dir is the chart's directory, found from this source file so callers in
// any package directory can load it.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "chart")
}

// Load loads the chart from Dir.
func Load() (*chart.Chart, error) { return loader.Load(Dir()) }

// Values coalesces user values with the chart's defaults and validates them
// against values.schema.json, as helm install does.
func Values(c *chart.Chart, user map[string]any, namespace string, validate bool) (chartutil.Values, error) {
	return chartutil.ToRenderValuesWithSchemaValidation(c, user, chartutil.ReleaseOptions{
		Name: ReleaseName, Namespace: namespace, Revision: 1, IsInstall: true,
	}, nil, !validate)
}

// Render loads the chart and renders it with validated values.
func Render(user map[string]any, namespace string) (Rendered, error) {
	c, err := Load()
	if err != nil {
		return Rendered{}, err
	}
	vals, err := Values(c, user, namespace, true)
	if err != nil {
		return Rendered{}, err
	}
	return RenderValues(c, vals)
}

// RenderValues renders already coalesced values.
func RenderValues(c *chart.Chart, vals chartutil.Values) (Rendered, error) {
	files, err := engine.Render(c, vals)
	if err != nil {
		return Rendered{}, err
	}
	codec := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	out := Rendered{Hooks: map[string]string{}}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		content := files[name]
		out.Raw += content + "\n"
		if strings.HasSuffix(name, "NOTES.txt") {
			out.Notes = content
			continue
		}
		docs := releaseutil.SplitManifests(content)
		keys := make([]string, 0, len(docs))
		for k := range docs {
			keys = append(keys, k)
		}
		sort.Sort(releaseutil.BySplitManifestsOrder(keys))
		for _, k := range keys {
			doc := docs[k]
			if strings.TrimSpace(doc) == "" {
				continue
			}
			obj, _, err := codec.Decode([]byte(doc), nil, nil)
			if err != nil {
				return Rendered{}, fmt.Errorf("%s does not decode strictly: %w\n%s", name, err, doc)
			}
			out.Objects = append(out.Objects, obj)
			if m, ok := obj.(interface{ GetAnnotations() map[string]string }); ok {
				if hook := m.GetAnnotations()["helm.sh/hook"]; hook != "" {
					out.Hooks[Key(obj)] = hook
				}
			}
		}
	}
	return out, nil
}

// Key is "Kind/name".
func Key(o kruntime.Object) string {
	return o.GetObjectKind().GroupVersionKind().Kind + "/" + Name(o)
}

// Name is the object's metadata.name.
func Name(o kruntime.Object) string {
	if m, ok := o.(interface{ GetName() string }); ok {
		return m.GetName()
	}
	return ""
}
