// Package charttest renders the sc-extension Helm chart the way `helm
// install` would (defaults coalesced, values.schema.json enforced) into typed
// Kubernetes objects, for the chart's unit tests and for integration tests
// that apply the rendered objects to a real API server.
package charttest

import (
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
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
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "chart")
}

// Load loads the chart from Dir.
func Load() (*chart.Chart, error) { return loader.Load(Dir()) }

// Values coalesces user values with the chart's defaults and validates them
// against values.schema.json, as helm install does against a cluster that
// serves only the built-in APIs.
func Values(c *chart.Chart, user map[string]any, namespace string, validate bool) (chartutil.Values, error) {
	return ValuesWithAPIs(c, user, namespace, validate)
}

// ValuesWithAPIs is Values against a cluster that also serves apiVersions
// ("group/version/Kind", as `helm template --api-versions` takes them), which
// templates see through .Capabilities.APIVersions.
func ValuesWithAPIs(c *chart.Chart, user map[string]any, namespace string, validate bool, apiVersions ...string) (chartutil.Values, error) {
	return ValuesForCluster(c, user, namespace, validate, "", apiVersions...)
}

// ValuesForCluster is ValuesWithAPIs against a cluster of kubeVersion
// ("v1.29.0"; empty: Helm's default, what `helm template` assumes).
func ValuesForCluster(c *chart.Chart, user map[string]any, namespace string, validate bool, kubeVersion string, apiVersions ...string) (chartutil.Values, error) {
	caps := chartutil.DefaultCapabilities.Copy()
	if kubeVersion != "" {
		kv, err := chartutil.ParseKubeVersion(kubeVersion)
		if err != nil {
			return nil, fmt.Errorf("kube version %q: %w", kubeVersion, err)
		}
		caps.KubeVersion = *kv
	}
	caps.APIVersions = append(slices.Clone(caps.APIVersions), apiVersions...)
	return chartutil.ToRenderValuesWithSchemaValidation(c, user, chartutil.ReleaseOptions{
		Name: ReleaseName, Namespace: namespace, Revision: 1, IsInstall: true,
	}, caps, !validate)
}

// CIValuesFiles lists chart/ci/*.yaml: the values files `helm lint` and the
// chart's tests run the chart with, one per supported configuration.
func CIValuesFiles() ([]string, error) {
	files, err := filepath.Glob(filepath.Join(Dir(), "ci", "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("list ci values files: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no values files in %s", filepath.Join(Dir(), "ci"))
	}
	sort.Strings(files)
	return files, nil
}

// ReadValuesFile reads a values file the way `helm --values` does.
func ReadValuesFile(path string) (map[string]any, error) {
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		return nil, fmt.Errorf("read values %s: %w", path, err)
	}
	return v.AsMap(), nil
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
			obj, err := decode(codec, []byte(doc))
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

// decode decodes a manifest strictly into its typed object. Kinds client-go
// does not know (the Prometheus Operator's ServiceMonitor) decode into
// unstructured.Unstructured, so their callers check fields by path.
func decode(codec kruntime.Serializer, doc []byte) (kruntime.Object, error) {
	obj, gvk, err := codec.Decode(doc, nil, nil)
	if err == nil {
		return obj, nil
	}
	if gvk == nil || !kruntime.IsNotRegisteredError(err) {
		return nil, err
	}
	js, yerr := yaml.YAMLToJSON(doc)
	if yerr != nil {
		return nil, fmt.Errorf("decode %s: %w", gvk, yerr)
	}
	u := &unstructured.Unstructured{}
	if _, _, uerr := unstructured.UnstructuredJSONScheme.Decode(js, nil, u); uerr != nil {
		return nil, fmt.Errorf("decode %s as unstructured: %w", gvk, uerr)
	}
	return u, nil
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
