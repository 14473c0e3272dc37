//go:build integration

// Package bind_integration proves pkg/kube/bind against a real API server:
// what server-side apply keeps, removes and refuses is the API server's
// decision, which a fake clientset only imitates.
package bind_integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// env is one test's namespace, an admin client (the "user") and a Binder
// whose requests are recorded.
type env struct {
	t      *testing.T
	ctx    context.Context
	ns     string
	admin  kubernetes.Interface
	now    time.Time
	binder *bind.Binder

	mu       sync.Mutex
	requests []string
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	k := kubetest.New(t, kubetest.QPS(100, 200))
	e := &env{t: t, ctx: ctx, ns: kubetest.Namespace(t), admin: k.Clientset, now: t0}
	cfg := k.Config
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			e.mu.Lock()
			e.requests = append(e.requests, r.Method+" "+r.URL.Path)
			e.mu.Unlock()
			return rt.RoundTrip(r)
		})
	})
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	e.binder = bind.NewBinder(cs, 0, func() time.Time { return e.now })
	return e
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// reconcile runs the Binder and returns what it did and the requests it
// sent, "METHOD path" each.
func (e *env) reconcile(ref bind.Ref, members ...bind.Member) (bind.Result, []string, error) {
	e.t.Helper()
	e.mu.Lock()
	e.requests = nil
	e.mu.Unlock()
	res, err := e.binder.Reconcile(e.ctx, ref, members)
	e.mu.Lock()
	defer e.mu.Unlock()
	return res, e.requests, err
}

// path is the API path of a workload, for the request lists.
func (e *env) path(kind connection.WorkloadKind, name string) string {
	group := "/apis/apps/v1"
	if kind == connection.WorkloadCronJob {
		group = "/apis/batch/v1"
	}
	return fmt.Sprintf("%s/namespaces/%s/%ss/%s", group, e.ns, strings.ToLower(string(kind)), name)
}

func (e *env) get(name string) []string {
	return []string{"GET " + e.path(connection.WorkloadDeployment, name)}
}
func (e *env) getApply(name string) []string {
	p := e.path(connection.WorkloadDeployment, name)
	return []string{"GET " + p, "PATCH " + p}
}

func (e *env) ref(kind connection.WorkloadKind, name string) bind.Ref {
	return bind.Ref{Namespace: e.ns, Kind: kind, Name: name}
}

// userApply server-side applies manifest (YAML or JSON) as kubectl would:
// field manager "kubectl".
func (e *env) userApply(kind connection.WorkloadKind, name, manifest string) {
	e.t.Helper()
	opts := metav1.PatchOptions{FieldManager: "kubectl"}
	body := []byte(manifest)
	var err error
	switch kind {
	case connection.WorkloadDeployment:
		_, err = e.admin.AppsV1().Deployments(e.ns).Patch(e.ctx, name, types.ApplyPatchType, body, opts)
	case connection.WorkloadStatefulSet:
		_, err = e.admin.AppsV1().StatefulSets(e.ns).Patch(e.ctx, name, types.ApplyPatchType, body, opts)
	case connection.WorkloadDaemonSet:
		_, err = e.admin.AppsV1().DaemonSets(e.ns).Patch(e.ctx, name, types.ApplyPatchType, body, opts)
	case connection.WorkloadCronJob:
		_, err = e.admin.BatchV1().CronJobs(e.ns).Patch(e.ctx, name, types.ApplyPatchType, body, opts)
	}
	require.NoError(e.t, err)
}

func (e *env) deployment(name string) *appsv1.Deployment {
	e.t.Helper()
	d, err := e.admin.AppsV1().Deployments(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	require.NoError(e.t, err)
	return d
}

// state is all of a Deployment a binding write could change, less what the
// Deployment controller writes meanwhile (status and its revision
// annotation), which is why tests compare it rather than resourceVersion.
func (e *env) state(name string) string {
	e.t.Helper()
	d := e.deployment(name)
	ann := map[string]string{}
	for k, v := range d.Annotations {
		if !strings.HasPrefix(k, "deployment.kubernetes.io/") {
			ann[k] = v
		}
	}
	var mf []metav1.ManagedFieldsEntry
	for _, m := range d.ManagedFields {
		if m.Manager == "kubectl" || m.Manager == bind.FieldManager {
			mf = append(mf, m)
		}
	}
	return mustJSON(e.t, struct {
		Generation  int64
		Labels      map[string]string
		Annotations map[string]string
		Spec        appsv1.DeploymentSpec
		Managers    []metav1.ManagedFieldsEntry
	}{d.Generation, d.Labels, ann, d.Spec, mf})
}

// managerFields is the FieldsV1 JSON of manager's entry, "" if it has none.
func managerFields(mf []metav1.ManagedFieldsEntry, manager string) string {
	for _, e := range mf {
		if e.Manager == manager && e.FieldsV1 != nil {
			return string(e.FieldsV1.Raw)
		}
	}
	return ""
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func envMember(name string, keys ...string) bind.Member {
	id := connection.ObjectID(name)
	return bind.Member{Connection: name, ID: id, Mode: connection.BindingEnv, SecretName: connection.SecretName(id), Keys: keys, RestartToken: "1"}
}

func volumeMember(name string) bind.Member {
	m := envMember(name)
	m.Mode, m.Keys = connection.BindingVolume, nil
	return m
}

// deploymentYAML is a user's Deployment with containers app (env MODE)
// and sidecar, plus extra lines under the pod spec.
func deploymentYAML(name, podSpecExtra string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  labels: {app: %[1]s}
spec:
  replicas: 0
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
%[2]s      containers:
      - name: app
        image: example.com/app:1
        env:
        - {name: MODE, value: prod}
      - name: sidecar
        image: example.com/sidecar:1
`, name, podSpecExtra)
}
