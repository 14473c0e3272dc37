//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

const (
	boundApp    = "bound-app"
	userManager = "e2e-user"
)

// TestWorkloadBindingAndRotation binds a user's Deployment to connections
// without any YAML edit and rolls it when their data changes:
//   - a connection with --workload: the pods get its variables (one rollout);
//   - its credential rotated: exactly one rollout, the new pods see the new value;
//   - two more connections bound (volume mode; workload identity), each a
//     rollout, then all three changed at once: exactly one more rollout,
//     whose pods see the binding directory, the new value and run as the
//     workload-identity ServiceAccount;
//   - all unbound: the pod template is what the user applied, and the
//     user's managed fields are untouched.
func TestWorkloadBindingAndRotation(t *testing.T) {
	e := product(t)
	ctx := context.Background()
	ns := e.targetNamespace(t)
	w := &workload{t: t, e: e, ns: ns, names: map[string]string{}}
	w.create(ctx)
	userTemplate := w.get().Spec.Template
	userFields := w.managedFields(userManager)
	w.awaitRollout(1)

	bindTo := &connection.Binding{Workloads: []connection.Workload{{Kind: connection.WorkloadDeployment, Name: boundApp}}}
	a, aCreds := buildSpec(t, uniq("BindA"), ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
	a.Binding = bindTo
	w.apply(protocol.OpCreate, a, aCreds)
	w.awaitRollout(2)
	credKey := ""
	for k := range aCreds {
		credKey = a.RenderedKey(k)
	}
	w.podsSay(fmt.Sprintf("%s=<credential, %d characters>", credKey, len(aCreds[credKey])))

	// Rotation: a longer value, so the masked log tells it apart.
	for k := range aCreds {
		aCreds[k] = newCredential() + "-rotated"
	}
	w.apply(protocol.OpUpdate, a, aCreds)
	w.awaitRollout(3)
	w.podsSay(fmt.Sprintf("%s=<credential, %d characters>", credKey, len(aCreds[credKey])))

	// Volume mode and workload identity on the same Deployment.
	b, bCreds := buildSpec(t, uniq("BindB"), ns, catalog.TargetKeyVault, catalog.AuthServicePrincipal, vaultID)
	b.Binding = &connection.Binding{Workloads: bindTo.Workloads, Mode: connection.BindingVolume}
	c, cCreds := buildSpec(t, uniq("BindC"), ns, catalog.TargetKeyVault, catalog.AuthWorkloadIdentity, vaultID)
	c.Binding = bindTo
	w.apply(protocol.OpCreate, b, bCreds)
	w.apply(protocol.OpCreate, c, cCreds)

	// All three changed at once, right after C's join rolled the pods (a
	// binding change restarts at once and opens a restart window): one
	// more rollout, at the window's end, whatever the machine's speed, as
	// long as the three land within the 30 s window.
	aCreds, bCreds, c = rotated(aCreds), rotated(bCreds), changed(c, "together")
	ids := map[string]string{}
	for _, ch := range []struct {
		spec  connection.Spec
		creds connection.Credentials
	}{{a, aCreds}, {b, bCreds}, {c, cCreds}} {
		id, err := e.cp.Update(ctx, ch.spec, ch.creds)
		require.NoError(t, err)
		ids[ch.spec.Name] = id
	}
	for name, id := range ids {
		ev, err := e.cp.Wait(ctx, name, id, nil)
		require.NoError(t, err)
		require.Equal(t, connection.PhaseSucceeded, ev.Phase, "%s: %s %s", name, ev.Reason, ev.Message)
	}
	// 3 so far, one per join of B and C, one for the three changes.
	w.awaitRollout(6)
	w.podsSay(fmt.Sprintf("%s=<credential, %d characters>", credKey, len(aCreds[credKey])))
	w.podsSay(fmt.Sprintf("binding %s: type=%s provider=azure", b.ID(), strings.ToLower(string(catalog.TargetKeyVault))))
	pod := w.currentPods()[0]
	assert.Equal(t, connection.ServiceAccountName(clientID), pod.Spec.ServiceAccountName)
	assert.Equal(t, "true", pod.Labels[bind.LabelWorkloadIdentityUse])

	// Unbound: the user's template and managed fields, as applied.
	for _, u := range []struct {
		spec  connection.Spec
		creds connection.Credentials
	}{{a, aCreds}, {b, bCreds}, {c, cCreds}} {
		u.spec.Binding = nil
		w.apply(protocol.OpUpdate, u.spec, u.creds)
	}
	w.awaitSettled()
	got := w.get()
	assert.Equal(t, userTemplate, got.Spec.Template, "the pod template is what the user applied")
	assert.Equal(t, userFields, w.managedFields(userManager), "the user's managed fields are untouched")
	assert.Empty(t, w.managedFields(bind.FieldManager), "nothing of the binding is left")
	for _, k := range []string{bind.AnnotationBindingHash, bind.AnnotationRestartedAt} {
		assert.NotContains(t, got.Annotations, k)
	}
}

// TestRestartOnChangeAnnotation: a Deployment whose own manifest reads a
// connection's Secret (envFrom) and names the connection in its
// restart-on-change annotation, without a binding, restarts once when the
// connection's credential changes, and its new pods see the new value; sc-job
// adds none of the connection's fields to it.
func TestRestartOnChangeAnnotation(t *testing.T) {
	e := product(t)
	ns := e.targetNamespace(t)
	spec, creds := buildSpec(t, uniq("Annotated"), ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
	w := &workload{t: t, e: e, ns: ns, names: map[string]string{}, envFrom: connection.SecretName(spec.ID()),
		annotations: map[string]string{bind.AnnotationRestartOnChange: spec.Name}}
	w.apply(protocol.OpCreate, spec, creds)
	w.create(context.Background())
	w.awaitRollout(1)
	credKey := ""
	for k := range creds {
		credKey = spec.RenderedKey(k)
	}
	userTemplate := w.get().Spec.Template

	for k := range creds {
		creds[k] = newCredential() + "-rotated"
	}
	w.apply(protocol.OpUpdate, spec, creds)
	w.awaitRollout(2)
	w.podsSay(fmt.Sprintf("%s=<credential, %d characters>", credKey, len(creds[credKey])))
	got := w.get().Spec.Template
	assert.Equal(t, userTemplate.Spec, got.Spec, "no field of the connection added")
	assert.NotEmpty(t, got.Annotations[bind.AnnotationRestartToken], "the restart is the token's change")
}

func rotated(creds connection.Credentials) connection.Credentials {
	out := connection.Credentials{}
	for k := range creds {
		out[k] = newCredential()
	}
	return out
}

// workload is the user's Deployment the test binds.
type workload struct {
	t        *testing.T
	e        *env
	ns       string
	names    map[string]string // the connections bound to it
	replicas int32             // default 2
	// envFrom is a Secret the user's own manifest reads (envFrom), and
	// annotations the Deployment's own; both optional.
	envFrom     string
	annotations map[string]string
}

// create applies the Deployment as its user would, with a manager of its
// own: replicas of sampleapp --stay under Pod Security "restricted".
func (w *workload) create(ctx context.Context) {
	w.t.Helper()
	if w.replicas == 0 {
		w.replicas = 2
	}
	labels := map[string]string{"app": boundApp}
	ctr := corev1ac.Container().WithName("app").WithImage("localhost/sc-extension/sampleapp:dev").
		WithImagePullPolicy(corev1.PullNever).WithArgs("--stay").
		WithEnv(corev1ac.EnvVar().WithName("USER_SETTING").WithValue("kept")).
		WithSecurityContext(corev1ac.SecurityContext().WithAllowPrivilegeEscalation(false).WithRunAsUser(65532).
			WithReadOnlyRootFilesystem(true).WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")))
	if w.envFrom != "" {
		ctr.WithEnvFrom(corev1ac.EnvFromSource().WithSecretRef(corev1ac.SecretEnvSource().WithName(w.envFrom)))
	}
	dep := appsv1ac.Deployment(boundApp, w.ns).WithAnnotations(w.annotations).WithSpec(appsv1ac.DeploymentSpec().
		WithReplicas(w.replicas).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels)).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(labels).WithSpec(corev1ac.PodSpec().
			WithTerminationGracePeriodSeconds(2).
			WithSecurityContext(corev1ac.PodSecurityContext().WithRunAsNonRoot(true).
				WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
			WithContainers(ctr))))
	_, err := w.e.cluster.Clientset.AppsV1().Deployments(w.ns).Apply(ctx, dep, metav1.ApplyOptions{FieldManager: userManager, Force: true})
	require.NoError(w.t, err)
}

func (w *workload) get() *appsv1.Deployment {
	w.t.Helper()
	d, err := w.e.cluster.Clientset.AppsV1().Deployments(w.ns).Get(context.Background(), boundApp, metav1.GetOptions{})
	require.NoError(w.t, err)
	return d
}

func (w *workload) managedFields(manager string) []string {
	var out []string
	for _, f := range w.get().ManagedFields {
		if f.Manager == manager && f.FieldsV1 != nil {
			out = append(out, string(f.Operation)+" "+string(f.FieldsV1.Raw))
		}
	}
	return out
}

func (w *workload) apply(op protocol.Op, spec connection.Spec, creds connection.Credentials) {
	w.t.Helper()
	w.names[spec.Name] = ""
	ev := w.e.apply(w.t, op, spec, creds)
	require.Equal(w.t, connection.PhaseSucceeded, ev.Phase, "%s %s: %s %s", op, spec.Name, ev.Reason, ev.Message)
}

// revisions counts the Deployment's ReplicaSets: one per pod template it
// ever ran, so one more is one rollout.
func (w *workload) revisions(ctx context.Context) (int, error) {
	rss, err := w.e.cluster.Clientset.AppsV1().ReplicaSets(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + boundApp})
	if err != nil {
		return 0, err
	}
	return len(rss.Items), nil
}

// awaitRollout waits until the Deployment has had exactly want pod
// templates and runs only pods of the newest, all ready.
func (w *workload) awaitRollout(want int) {
	w.t.Helper()
	eventually(w.t, opTimeout, fmt.Sprintf("rollout %d of %s", want, boundApp), func(ctx context.Context) (bool, error) {
		n, err := w.revisions(ctx)
		if err != nil {
			return false, err
		}
		if n > want {
			return false, fmt.Errorf("%d rollouts, want %d", n, want)
		}
		return n == want && w.rolledOut(ctx), nil
	})
	// Nothing more follows: the count holds once every connection settled.
	assert.Equal(w.t, want, w.awaitSettled(), "rollouts of %s", boundApp)
}

func (w *workload) rolledOut(ctx context.Context) bool {
	d, err := w.e.cluster.Clientset.AppsV1().Deployments(w.ns).Get(ctx, boundApp, metav1.GetOptions{})
	if err != nil {
		return false
	}
	s := d.Status
	n := w.replicas
	return s.ObservedGeneration == d.Generation && s.UpdatedReplicas == n && s.ReadyReplicas == n && s.Replicas == n
}

// awaitSettled waits until no connection of the namespace has work left
// (a scheduled restart included) and the rollout is done; it returns the
// number of rollouts then.
func (w *workload) awaitSettled() int {
	w.t.Helper()
	n := 0
	eventually(w.t, opTimeout, "every connection of "+w.ns+" settled", func(ctx context.Context) (bool, error) {
		recs, err := w.e.recordsOf(ctx, w.names)
		if err != nil {
			return false, err
		}
		for _, c := range recs {
			if c.Status.Phase != connection.PhaseSucceeded {
				return false, fmt.Errorf("%s is %s/%s", c.Spec.Name, c.Status.Phase, c.Status.Reason)
			}
		}
		if !w.rolledOut(ctx) {
			return false, fmt.Errorf("rollout in progress")
		}
		n, err = w.revisions(ctx)
		return err == nil, err
	})
	return n
}

// currentPods are the running pods of the newest pod template.
func (w *workload) currentPods() []corev1.Pod {
	w.t.Helper()
	ctx := context.Background()
	d := w.get()
	pods, err := w.e.cluster.Clientset.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + boundApp})
	require.NoError(w.t, err)
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning &&
			p.Annotations[bind.AnnotationRestartToken] == d.Spec.Template.Annotations[bind.AnnotationRestartToken] {
			out = append(out, p)
		}
	}
	require.NotEmpty(w.t, out, "running pods of the current template")
	return out
}

// podsSay waits until every current pod's log has line.
func (w *workload) podsSay(line string) {
	w.t.Helper()
	for _, p := range w.currentPods() {
		eventually(w.t, time.Minute, p.Name+" logs "+line, func(ctx context.Context) (bool, error) {
			b, err := w.e.cluster.Clientset.CoreV1().Pods(w.ns).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
			if err != nil {
				return false, err
			}
			if !strings.Contains(string(b), line) {
				return false, fmt.Errorf("log so far:\n%s", b)
			}
			return true, nil
		})
	}
}
