//go:build integration

// Package chart_integration applies the rendered chart to a real API server
// (private etcd + kube-apiserver from e2e/testbed): Pod Security admission
// enforces "restricted" on the release namespace, and the RBAC authorizer
// answers SubjectAccessReviews for the chart's ServiceAccounts.
package chart_integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/sc-extension/sc-extension/internal/testkit/charttest"
	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

const ns = "sc-system"

// warnings collects API server warnings, where Pod Security admission
// reports workload templates (Deployment, Job) that would violate the
// namespace's level.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

func TestRenderedChartOnRealAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	warn := &warnings{}
	k := kubetest.New(t, kubetest.Warnings(warn))
	cs := k.Clientset
	kubetest.Namespace(t, kubetest.Name(ns), kubetest.Labels(map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
		"pod-security.kubernetes.io/warn":            "restricted",
	}))

	r, err := charttest.Render(map[string]any{
		"cluster": map[string]any{"id": "c1"},
		"nats": map[string]any{"url": "nats://10.0.0.5:4222", "credentialsSecret": "sc-nats",
			"tls": map[string]any{"caSecret": "sc-agent-nats-tls", "clientSecret": "sc-agent-nats-tls"}},
		"replicaCount":     2,
		"deniedNamespaces": []any{deniedNS},
	}, ns)
	require.NoError(t, err)

	owner := t
	t.Run("every object is admitted without warnings", func(t *testing.T) {
		applyAll(ctx, t, owner, k, r.Objects)
		assert.Empty(t, warn.take())
	})

	// Admission only warns about templates; a Pod is enforced. Create the
	// pods the Deployment and the hook Job would create.
	t.Run("pods of every template pass restricted admission", func(t *testing.T) {
		for _, o := range r.Objects {
			var spec *corev1.PodSpec
			switch v := o.(type) {
			case *appsv1.Deployment:
				spec = &v.Spec.Template.Spec
			case *batchv1.Job:
				spec = &v.Spec.Template.Spec
			default:
				continue
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "template-of-" + charttest.Name(o), Namespace: ns}, Spec: *spec.DeepCopy()}
			_, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{FieldManager: "chart-test"})
			assert.NoError(t, err, "pod template of %s", charttest.Key(o))
		}
		assert.Empty(t, warn.take())
	})

	t.Run("the API server's RBAC authorizer agrees with the documented grants", func(t *testing.T) {
		checkRBAC(ctx, t, cs)
	})

	// What RBAC cannot say (names, types, labels, namespaces, the agent's
	// Job) the chart's admission policies do: every identity tries what its
	// job needs and what it must never do, and the test checks which layer
	// stopped each attempt.
	t.Run("impersonated identities: needed actions allowed, forbidden ones denied", func(t *testing.T) {
		checkPolicies(ctx, t, k)
	})
}

// applyAll creates objs; owner's cleanup deletes the cluster-scoped ones.
func applyAll(ctx context.Context, t, owner *testing.T, k *kubetest.Clients, objs []runtime.Object) {
	t.Helper()
	dc := k.Dynamic
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(k.Clientset.Discovery()))
	for _, o := range objs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		require.NoError(t, err)
		u := &unstructured.Unstructured{Object: m}
		gvk := o.GetObjectKind().GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		require.NoError(t, err, gvk.String())
		var ri dynamic.ResourceInterface = dc.Resource(mapping.Resource)
		if u.GetNamespace() != "" {
			ri = dc.Resource(mapping.Resource).Namespace(u.GetNamespace())
		}
		_, err = ri.Create(ctx, u, metav1.CreateOptions{FieldManager: "chart-test"})
		require.NoError(t, err, "create %s", charttest.Key(o))
		// Cluster-scoped names are fixed: another test's release needs them.
		if u.GetNamespace() == "" {
			owner.Cleanup(func() {
				if err := ri.Delete(context.Background(), u.GetName(), metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
					assert.NoError(owner, err, "delete %s", charttest.Key(o))
				}
			})
		}
	}
}

type access struct {
	sa, verb, group, resource, namespace, name string
	allowed                                    bool
}

func (a access) String() string {
	return fmt.Sprintf("%s %s %s/%s %s/%s", a.sa, a.verb, a.group, a.resource, a.namespace, a.name)
}

func checkRBAC(ctx context.Context, t *testing.T, cs kubernetes.Interface) {
	review := func(a access) (bool, string) {
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   "system:serviceaccount:" + ns + ":" + a.sa,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: a.namespace, Verb: a.verb, Group: a.group, Resource: a.resource, Name: a.name,
				},
			},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		return sar.Status.Allowed, sar.Status.Reason
	}
	// The authorizer reads bindings through an informer: wait until it has them.
	first := access{"sc-agent", "create", "", "configmaps", ns, "", true}
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { ok, _ := review(first); return ok, nil }))

	matrix := []access{
		// agent: writes only in sc-system
		{"sc-agent", "create", "", "secrets", ns, "", true},
		{"sc-agent", "update", "", "secrets", ns, "sc-agent-key", true},
		{"sc-agent", "create", "", "secrets", "team-a", "", false},
		{"sc-agent", "update", "", "secrets", "team-a", "sc-x-secret", false},
		{"sc-agent", "delete", "", "secrets", "team-a", "sc-x-secret", false},
		{"sc-agent", "create", "", "serviceaccounts", "team-a", "", false},
		{"sc-agent", "list", "", "secrets", "", "", true},
		{"sc-agent", "watch", "", "serviceaccounts", "", "", true},
		{"sc-agent", "list", "", "namespaces", "", "", true},
		{"sc-agent", "create", "batch", "jobs", ns, "", true},
		{"sc-agent", "update", "batch", "jobs", ns, "sc-job", false},
		{"sc-agent", "create", "batch", "jobs", "team-a", "", false},
		{"sc-agent", "update", "coordination.k8s.io", "leases", ns, "sc-agent", true},
		{"sc-agent", "update", "coordination.k8s.io", "leases", ns, "other", false},
		{"sc-agent", "create", "events.k8s.io", "events", ns, "", true},
		{"sc-agent", "create", "", "pods", ns, "", false},
		// sc-job: Secrets/ServiceAccounts anywhere (the admission policy narrows them), little else
		{"sc-job", "create", "", "secrets", "team-a", "", true},
		{"sc-job", "update", "", "serviceaccounts", "team-a", "sc-account-x", true},
		{"sc-job", "patch", "", "serviceaccounts", "team-a", "sc-account-x", false},
		{"sc-job", "delete", "", "secrets", ns, "sc-conn-x-cred", true},
		{"sc-job", "create", "", "serviceaccounts", "kube-system", "", true}, // RBAC allows; the policy denies (policy_test.go)
		{"sc-job", "delete", "", "secrets", "team-a", "sc-x-secret", true},
		{"sc-job", "create", "secrets-store.csi.x-k8s.io", "secretproviderclasses", "team-a", "", true},
		{"sc-job", "get", "apiextensions.k8s.io", "customresourcedefinitions", "", "secretproviderclasses.secrets-store.csi.x-k8s.io", true},
		{"sc-job", "get", "apiextensions.k8s.io", "customresourcedefinitions", "", "other.example.com", false},
		{"sc-job", "create", "", "configmaps", "team-a", "", false},
		{"sc-job", "list", "", "secrets", "kube-system", "", false},
		{"sc-job", "watch", "", "secrets", "", "", false},
		{"sc-job", "update", "", "configmaps", ns, "sc-conn-x", true},
		{"sc-job", "delete", "", "configmaps", ns, "sc-conn-x", true},
		{"sc-job", "delete", "", "configmaps", "team-a", "sc-conn-x", false},
		{"sc-job", "create", "", "configmaps", ns, "", false},
		{"sc-job", "delete", "batch", "jobs", ns, "sc-job", true},
		{"sc-job", "delete", "batch", "jobs", ns, "sc-job-render", true},
		{"sc-job", "delete", "batch", "jobs", ns, "someone-else", false},
		{"sc-job", "create", "batch", "jobs", ns, "", false},
		{"sc-job", "create", "", "pods", "team-a", "", false},
		{"sc-job", "create", "rbac.authorization.k8s.io", "rolebindings", "team-a", "", false},
	}
	var wrong []string
	for _, a := range matrix {
		if got, reason := review(a); got != a.allowed {
			wrong = append(wrong, fmt.Sprintf("%s: allowed=%t, want %t (%s)", a, got, a.allowed, reason))
		}
	}
	assert.Empty(t, wrong, strings.Join(wrong, "\n"))
}
