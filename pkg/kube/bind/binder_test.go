package bind

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

const ns = "team-a"

var (
	t0  = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	web = Ref{Namespace: ns, Kind: connection.WorkloadDeployment, Name: "web"}
)

func deployment(name string, containers ...corev1.Container) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: containers},
			},
		},
	}
}

func ctr(name string, env ...corev1.EnvVar) corev1.Container {
	return corev1.Container{Name: name, Image: "example.com/" + name, Env: env}
}

func envMember(name string, keys ...string) Member {
	id := connection.ObjectID(name)
	return Member{Connection: name, ID: id, Mode: connection.BindingEnv, SecretName: connection.SecretName(id), Keys: keys, RestartToken: "1"}
}

func volumeMember(name string) Member {
	m := envMember(name)
	m.Mode, m.Keys = connection.BindingVolume, nil
	return m
}

type fixture struct {
	t   *testing.T
	ctx context.Context
	cs  *fake.Clientset
	now time.Time
	b   *Binder
}

func newFixture(t *testing.T, objs ...*appsv1.Deployment) *fixture {
	f := &fixture{t: t, ctx: context.Background(), cs: fake.NewClientset(), now: t0}
	for _, o := range objs {
		_, err := f.cs.AppsV1().Deployments(o.Namespace).Create(f.ctx, o, metav1.CreateOptions{FieldManager: "kubectl"})
		require.NoError(t, err)
	}
	f.cs.ClearActions()
	f.b = NewBinder(f.cs, 0, func() time.Time { return f.now })
	return f
}

// reconcile runs Reconcile and returns its result and the actions it made.
func (f *fixture) reconcile(ref Ref, members ...Member) (Result, []string, error) {
	f.t.Helper()
	f.cs.ClearActions()
	res, err := f.b.Reconcile(f.ctx, ref, members)
	return res, fakeactions.Of(f.cs), err
}

func (f *fixture) deployment(name string) *appsv1.Deployment {
	f.t.Helper()
	d, err := f.cs.AppsV1().Deployments(ns).Get(f.ctx, name, metav1.GetOptions{})
	require.NoError(f.t, err)
	return d
}

var (
	getWeb   = []string{"get deployments team-a/web"}
	applyWeb = []string{"get deployments team-a/web", "patch deployments team-a/web"}
)

func secretRef(secret, key string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}
}

func TestFirstBindingAddsEnvEntriesAndTokenWithoutARestart(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app", corev1.EnvVar{Name: "MODE", Value: "prod"}), ctr("sidecar")))
	m := envMember("blob", "AZURE_STORAGEBLOB_CONNECTIONSTRING", "B_KEY")

	res, acts, err := f.reconcile(web, m)
	require.NoError(t, err)
	assert.Equal(t, applyWeb, acts)
	assert.Equal(t, Result{Wrote: true, Containers: []string{"app", "sidecar"}}, res, "a first binding carries its token and is no restart")

	d := f.deployment("web")
	for _, c := range d.Spec.Template.Spec.Containers {
		want := []corev1.EnvVar{
			{Name: "AZURE_STORAGEBLOB_CONNECTIONSTRING", ValueFrom: secretRef("sc-blob-secret", "AZURE_STORAGEBLOB_CONNECTIONSTRING")},
			{Name: "B_KEY", ValueFrom: secretRef("sc-blob-secret", "B_KEY")},
		}
		if c.Name == "app" {
			want = append([]corev1.EnvVar{{Name: "MODE", Value: "prod"}}, want...)
		}
		assert.Equal(t, want, c.Env, c.Name)
		assert.Equal(t, "example.com/"+c.Name, c.Image, "the user's fields stay")
	}
	assert.Equal(t, restartToken([]Member{m}), d.Spec.Template.Annotations[AnnotationRestartToken])
	assert.NotEmpty(t, d.Annotations[AnnotationBindingHash])
	assert.NotContains(t, d.Annotations, AnnotationRestartedAt, "no restart yet")
	assert.Equal(t, "web", d.Spec.Template.Labels["app"])

	// the same members again: one GET, no write
	res, acts, err = f.reconcile(web, m)
	require.NoError(t, err)
	assert.Equal(t, getWeb, acts)
	assert.Equal(t, Result{Containers: []string{"app", "sidecar"}}, res)
}

func TestNamedContainersOnly(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app"), ctr("sidecar")))
	m := envMember("blob", "K")
	m.Containers = []string{"sidecar"}
	res, _, err := f.reconcile(web, m)
	require.NoError(t, err)
	assert.Equal(t, []string{"sidecar"}, res.Containers)
	d := f.deployment("web")
	assert.Empty(t, d.Spec.Template.Spec.Containers[0].Env)
	assert.Len(t, d.Spec.Template.Spec.Containers[1].Env, 1)

	// A mistyped container in a change: the share in place stays.
	bad := m
	bad.Containers, bad.Previous = []string{"sidecar", "worker"}, &m
	res, acts, err := f.reconcile(web, bad)
	require.NoError(t, err)
	refusal := res.Refusal(m.ID)
	require.ErrorIs(t, refusal, ErrContainerNotFound)
	assert.Contains(t, refusal.Error(), `spec.template.spec.containers has no container "worker" (connection blob names it; it has app, sidecar)`)
	assert.True(t, Permanent(refusal))
	assert.Equal(t, getWeb, acts, "the previous share is in place: nothing to write")
	assert.Equal(t, []string{"sidecar"}, res.Containers)

	// With no share in place to keep, the refused member is left out.
	bad.Previous = nil
	res, acts, err = f.reconcile(web, bad)
	require.NoError(t, err)
	require.ErrorIs(t, res.Refusal(m.ID), ErrContainerNotFound)
	assert.Equal(t, applyWeb, acts)
	assert.Empty(t, f.deployment("web").Spec.Template.Spec.Containers[1].Env)
}

// One connection's bad share must not fail the others bound to the same
// workload: it is left out, they are applied.
func TestRefusedMemberDoesNotFailTheOthers(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app", corev1.EnvVar{Name: "USER_SET", Value: "x"})))
	good := envMember("good", "GOOD_KEY")
	typo := envMember("typo", "TYPO_KEY")
	typo.Containers = []string{"nope"}
	clash := envMember("clash", "USER_SET")
	badName := envMember("badname", "1BAD")

	res, acts, err := f.reconcile(web, typo, good, clash, badName)
	require.NoError(t, err)
	assert.Equal(t, applyWeb, acts)
	assert.Equal(t, []string{"app"}, res.Containers)
	require.Len(t, res.Refused, 3)
	assert.ErrorIs(t, res.Refusal(typo.ID), ErrContainerNotFound)
	assert.ErrorIs(t, res.Refusal(clash.ID), ErrBindingConflict)
	assert.ErrorIs(t, res.Refusal(badName.ID), ErrInvalidEnvName)
	assert.NoError(t, res.Refusal(good.ID))
	assert.Equal(t, []corev1.EnvVar{
		{Name: "USER_SET", Value: "x"},
		{Name: "GOOD_KEY", ValueFrom: secretRef(good.SecretName, "GOOD_KEY")},
	}, f.deployment("web").Spec.Template.Spec.Containers[0].Env)
}

// Two members wanting one env var: the one whose entry is live keeps it,
// whatever the order.
func TestEnvClashTheLiveEntryKeepsIt(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app")))
	later := envMember("zz-later", "SAME")
	_, _, err := f.reconcile(web, later)
	require.NoError(t, err)

	first := envMember("aa-first", "SAME")
	res, acts, err := f.reconcile(web, first, later)
	require.NoError(t, err)
	assert.Equal(t, getWeb, acts, "zz-later's entry is in place: nothing to write")
	refusal := res.Refusal(first.ID)
	require.ErrorIs(t, refusal, ErrBindingConflict)
	assert.Contains(t, refusal.Error(), "env[name=SAME] is wanted by connections aa-first and zz-later; zz-later keeps it")
	assert.NoError(t, res.Refusal(later.ID))
}

func TestRestartTokenChangeRestartsOncePerWindow(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app")))
	m := envMember("blob", "K")
	_, _, err := f.reconcile(web, m)
	require.NoError(t, err)

	// new data: restart at once (no restart recorded yet)
	m.RestartToken = "2"
	res, acts, err := f.reconcile(web, m)
	require.NoError(t, err)
	assert.Equal(t, applyWeb, acts)
	assert.True(t, res.Restarted)
	d := f.deployment("web")
	assert.Equal(t, restartToken([]Member{m}), d.Spec.Template.Annotations[AnnotationRestartToken])
	assert.Equal(t, t0.Format(time.RFC3339), d.Annotations[AnnotationRestartedAt])

	// newer data 10 s later: held back until the window ends, nothing written
	f.now = t0.Add(10 * time.Second)
	m.RestartToken = "3"
	res, acts, err = f.reconcile(web, m)
	require.NoError(t, err)
	assert.Equal(t, getWeb, acts)
	assert.Equal(t, Result{DeferredUntil: t0.Add(DefaultWindow), Containers: []string{"app"}}, res)

	// a binding change inside the window rolls the pods anyway: it carries
	// the new token, and nothing is left for the window's end
	f.now = t0.Add(20 * time.Second)
	m2 := envMember("queue", "Q")
	res, acts, err = f.reconcile(web, m, m2)
	require.NoError(t, err)
	assert.Equal(t, applyWeb, acts)
	assert.Equal(t, Result{Wrote: true, Restarted: true, Containers: []string{"app"}}, res)
	d = f.deployment("web")
	assert.Equal(t, restartToken([]Member{m, m2}), d.Spec.Template.Annotations[AnnotationRestartToken])
	assert.Equal(t, f.now.Format(time.RFC3339), d.Annotations[AnnotationRestartedAt])

	// at the old window's end: nothing to do
	f.now = t0.Add(DefaultWindow)
	res, acts, err = f.reconcile(web, m, m2)
	require.NoError(t, err)
	assert.Equal(t, getWeb, acts)
	assert.Equal(t, Result{Containers: []string{"app"}}, res)
}

func TestRestartWaitsForNotBefore(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app")))
	m := envMember("blob", "K")
	_, _, err := f.reconcile(web, m)
	require.NoError(t, err)

	m.RestartToken = "2"
	settle := t0.Add(2 * time.Second)
	f.cs.ClearActions()
	res, err := f.b.ReconcileNotBefore(f.ctx, web, []Member{m}, settle, nil)
	require.NoError(t, err)
	assert.Equal(t, getWeb, fakeactions.Of(f.cs))
	assert.Equal(t, Result{DeferredUntil: settle, Containers: []string{"app"}}, res)

	f.now = settle
	f.cs.ClearActions()
	res, err = f.b.ReconcileNotBefore(f.ctx, web, []Member{m}, settle, nil)
	require.NoError(t, err)
	assert.Equal(t, applyWeb, fakeactions.Of(f.cs))
	assert.True(t, res.Restarted)
	assert.Equal(t, restartToken([]Member{m}), f.deployment("web").Spec.Template.Annotations[AnnotationRestartToken])
}

func TestOptedOutMembersDoNotRestart(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app")))
	m := envMember("blob", "K")
	m.RestartToken = ""
	_, _, err := f.reconcile(web, m)
	require.NoError(t, err)
	assert.NotContains(t, f.deployment("web").Spec.Template.Annotations, AnnotationRestartToken)
	_, acts, err := f.reconcile(web, m)
	require.NoError(t, err)
	assert.Equal(t, getWeb, acts)
}

func TestRestartTokenIgnoresMemberOrderAndOptedOutMembers(t *testing.T) {
	a, b := envMember("a", "A"), envMember("b", "B")
	c := envMember("c", "C")
	c.RestartToken = ""
	assert.Equal(t, restartToken([]Member{a, b}), restartToken([]Member{b, c, a}))
	b2 := b
	b2.RestartToken = "2"
	assert.NotEqual(t, restartToken([]Member{a, b}), restartToken([]Member{a, b2}))
	assert.Empty(t, restartToken([]Member{c}))
}

func TestMissingWorkload(t *testing.T) {
	f := newFixture(t)
	_, acts, err := f.reconcile(web, envMember("blob", "K"))
	require.ErrorIs(t, err, ErrWorkloadNotFound)
	assert.Contains(t, err.Error(), "Deployment team-a/web")
	assert.Equal(t, getWeb, acts)
	assert.False(t, Permanent(err), "it may yet be created")

	res, acts, err := f.reconcile(web)
	require.NoError(t, err, "nothing to unbind")
	assert.Equal(t, Result{}, res)
	assert.Equal(t, getWeb, acts)
}

// An apply to a workload deleted since the GET would create it from our
// fields alone, which the API server finds invalid: that is reported as the
// missing workload it is, not as a permanent failure.
func TestWorkloadDeletedBetweenReadAndApply(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app")))
	f.cs.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		require.NoError(t, f.cs.Tracker().Delete(appsv1.SchemeGroupVersion.WithResource("deployments"), ns, "web"))
		return true, nil, apierrors.NewInvalid(appsv1.SchemeGroupVersion.WithKind("Deployment").GroupKind(), "web", nil)
	})
	_, acts, err := f.reconcile(web, envMember("blob", "K"))
	require.ErrorIs(t, err, ErrWorkloadNotFound)
	assert.Equal(t, []string{"get deployments team-a/web", "patch deployments team-a/web", "get deployments team-a/web"}, acts)
	assert.False(t, Permanent(err))
}

func TestInvalidEnvNameIsRefused(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app")))
	res, acts, err := f.reconcile(web, envMember("blob", "GOOD", "1BAD"))
	require.NoError(t, err)
	refusal := res.Refusal(connection.ObjectID("blob"))
	require.ErrorIs(t, refusal, ErrInvalidEnvName)
	assert.Contains(t, refusal.Error(), `connection blob renders key "1BAD"`)
	assert.Equal(t, getWeb, acts, "nothing of ours on the workload: no write")
	assert.True(t, Permanent(refusal))

	v := volumeMember("blob")
	v.Keys = []string{"1BAD"}
	_, _, err = f.reconcile(web, v)
	require.NoError(t, err, "volume mode: keys are file names")
}

func TestUnbindingRemovesEverythingWeAdded(t *testing.T) {
	orig := deployment("web", ctr("app", corev1.EnvVar{Name: "MODE", Value: "prod"}))
	f := newFixture(t, orig)
	before := f.deployment("web")
	_, _, err := f.reconcile(web, envMember("blob", "K"), volumeMember("files"))
	require.NoError(t, err)

	res, acts, err := f.reconcile(web)
	require.NoError(t, err)
	assert.Equal(t, applyWeb, acts)
	assert.Equal(t, Result{Wrote: true}, res)
	after := f.deployment("web")
	assert.Equal(t, before.Spec.Template, after.Spec.Template)
	assert.Empty(t, after.Annotations)
	for _, e := range after.ManagedFields {
		assert.NotEqual(t, FieldManager, e.Manager)
	}

	// nothing of ours left: no write
	res, acts, err = f.reconcile(web)
	require.NoError(t, err)
	assert.Equal(t, getWeb, acts)
	assert.Equal(t, Result{}, res)
}

func TestRemovingAMemberRemovesOnlyItsEntries(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app")))
	a, b := envMember("a", "A1", "A2"), envMember("b", "B1")
	_, _, err := f.reconcile(web, b, a)
	require.NoError(t, err)
	assert.Equal(t, []string{"A1", "A2", "B1"}, envNames(f.deployment("web").Spec.Template.Spec.Containers[0]))

	_, acts, err := f.reconcile(web, b)
	require.NoError(t, err)
	assert.Equal(t, applyWeb, acts)
	assert.Equal(t, []string{"B1"}, envNames(f.deployment("web").Spec.Template.Spec.Containers[0]))
}

func envNames(c corev1.Container) []string {
	var out []string
	for _, e := range c.Env {
		out = append(out, e.Name)
	}
	return out
}

func TestVolumeMode(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app"), ctr("own-root", corev1.EnvVar{Name: EnvServiceBindingRoot, Value: "/srv/b"})))
	a, b := volumeMember("a"), volumeMember("b")
	res, _, err := f.reconcile(web, a, b)
	require.NoError(t, err)
	assert.Equal(t, []string{"app", "own-root"}, res.Containers)
	d := f.deployment("web")
	assert.Equal(t, []corev1.Volume{
		{Name: "sc-a-binding", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sc-a-secret"}}},
		{Name: "sc-b-binding", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sc-b-secret"}}},
	}, d.Spec.Template.Spec.Volumes)
	app, own := d.Spec.Template.Spec.Containers[0], d.Spec.Template.Spec.Containers[1]
	assert.Equal(t, []corev1.EnvVar{{Name: EnvServiceBindingRoot, Value: "/bindings"}}, app.Env, "one SERVICE_BINDING_ROOT for both members")
	assert.Equal(t, []corev1.VolumeMount{
		{Name: "sc-a-binding", MountPath: "/bindings/a", ReadOnly: true},
		{Name: "sc-b-binding", MountPath: "/bindings/b", ReadOnly: true},
	}, app.VolumeMounts)
	assert.Equal(t, []corev1.EnvVar{{Name: EnvServiceBindingRoot, Value: "/srv/b"}}, own.Env, "the container's own root is kept")
	assert.Equal(t, "/srv/b/a", own.VolumeMounts[0].MountPath)

	// stable: the root we set is read back as ours
	_, acts, err := f.reconcile(web, a, b)
	require.NoError(t, err)
	assert.Equal(t, getWeb, acts)
}

func TestEnvConflicts(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app", corev1.EnvVar{Name: "USER_SET", Value: "x"})))

	a := envMember("a", "USER_SET")
	res, acts, err := f.reconcile(web, a)
	require.NoError(t, err)
	refusal := res.Refusal(a.ID)
	require.ErrorIs(t, refusal, ErrBindingConflict)
	assert.Contains(t, refusal.Error(), "spec.template.spec.containers[name=app].env[name=USER_SET] is already set by another manager; connection a would set it too")
	assert.Equal(t, getWeb, acts)
	assert.True(t, Permanent(refusal))

	a, b := envMember("a", "SAME"), envMember("b", "SAME")
	res, _, err = f.reconcile(web, a, b)
	require.NoError(t, err)
	require.ErrorIs(t, res.Refusal(b.ID), ErrBindingConflict)
	assert.Contains(t, res.Refusal(b.ID).Error(), "env[name=SAME] is wanted by connections a and b; a keeps it")
	assert.NoError(t, res.Refusal(a.ID))

	a, v := envMember("a", EnvServiceBindingRoot), volumeMember("b")
	res, _, err = f.reconcile(web, a, v)
	require.NoError(t, err)
	require.ErrorIs(t, res.Refusal(a.ID), ErrBindingConflict, "a key named like the binding root loses to volume mode")
	assert.NoError(t, res.Refusal(v.ID))
}

func TestServiceAccount(t *testing.T) {
	f := newFixture(t, deployment("web", ctr("app")))
	wi := envMember("kv", "K")
	wi.ServiceAccount = "sc-account-1"
	_, _, err := f.reconcile(web, wi)
	require.NoError(t, err)
	d := f.deployment("web")
	assert.Equal(t, "sc-account-1", d.Spec.Template.Spec.ServiceAccountName)
	assert.Equal(t, "true", d.Spec.Template.Labels[LabelWorkloadIdentityUse])

	// ours: another client id may replace it
	wi.ServiceAccount = "sc-account-2"
	_, _, err = f.reconcile(web, wi)
	require.NoError(t, err)
	assert.Equal(t, "sc-account-2", f.deployment("web").Spec.Template.Spec.ServiceAccountName)

	other := envMember("kv2", "K2")
	other.ServiceAccount = "sc-account-3"
	res, acts, err := f.reconcile(web, other, wi)
	require.NoError(t, err)
	refusal := res.Refusal(other.ID)
	require.ErrorIs(t, refusal, ErrServiceAccountConflict)
	assert.Contains(t, refusal.Error(), "spec.template.spec.serviceAccountName would have to be both sc-account-2 (connection kv) and sc-account-3 (connection kv2)")
	assert.NoError(t, res.Refusal(wi.ID), "the ServiceAccount the pods run as keeps them")
	assert.Equal(t, getWeb, acts, "kv2 is left out and kv's share is in place: nothing to write")

	user := deployment("api", ctr("app"))
	user.Spec.Template.Spec.ServiceAccountName = "api-runner"
	_, err = f.cs.AppsV1().Deployments(ns).Create(f.ctx, user, metav1.CreateOptions{FieldManager: "kubectl"})
	require.NoError(t, err)
	res, acts, err = f.reconcile(Ref{Namespace: ns, Kind: connection.WorkloadDeployment, Name: "api"}, wi)
	require.NoError(t, err)
	refusal = res.Refusal(wi.ID)
	require.ErrorIs(t, refusal, ErrServiceAccountConflict)
	assert.Contains(t, refusal.Error(), "spec.template.spec.serviceAccountName is api-runner, set by another manager; connection kv (workload identity) needs sc-account-2")
	assert.Equal(t, []string{"get deployments team-a/api"}, acts)
	assert.True(t, Permanent(refusal))
}

func TestCronJobTemplatePath(t *testing.T) {
	f := newFixture(t)
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{ctr("task")}},
		}}}},
	}
	_, err := f.cs.BatchV1().CronJobs(ns).Create(f.ctx, cj, metav1.CreateOptions{FieldManager: "kubectl"})
	require.NoError(t, err)
	ref := Ref{Namespace: ns, Kind: connection.WorkloadCronJob, Name: "nightly"}
	res, acts, err := f.reconcile(ref, envMember("blob", "K"))
	require.NoError(t, err)
	assert.Equal(t, []string{"get cronjobs team-a/nightly", "patch cronjobs team-a/nightly"}, acts)
	assert.Equal(t, []string{"task"}, res.Containers)
	got, err := f.cs.BatchV1().CronJobs(ns).Get(f.ctx, "nightly", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "K", got.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env[0].Name)
	assert.Equal(t, "@daily", got.Spec.Schedule)
}

func TestUnknownKindIsPermanent(t *testing.T) {
	f := newFixture(t)
	_, acts, err := f.reconcile(Ref{Namespace: ns, Kind: "ReplicaSet", Name: "x"}, envMember("a", "A"))
	require.Error(t, err)
	assert.Empty(t, acts)
	assert.True(t, Permanent(err))
}

func TestPermanent(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{ErrWorkloadNotFound, false},
		{ErrContainerNotFound, true},
		{ErrServiceAccountConflict, true},
		{ErrBindingConflict, true},
		{ErrInvalidEnvName, true},
		{apierrors.NewForbidden(gr, "web", errors.New("no")), true},
		{apierrors.NewServiceUnavailable("busy"), false},
		{context.DeadlineExceeded, false},
	} {
		assert.Equal(t, tc.want, Permanent(tc.err), "%v", tc.err)
	}
}

func TestMemberOf(t *testing.T) {
	spec := connection.Spec{
		Name: "My_KV", Scope: ns,
		TargetService:  connection.TargetService{Type: catalog.TargetKeyVault, ID: "id"},
		AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: "00000000-0000-4000-8000-0000000000AB"},
		Configurations: []connection.Configuration{{Name: "Z_KEY"}, {Name: "AZURE_KEYVAULT_CLIENTID"}},
		CustomizedKeys: map[string]string{"Z_KEY": "A_KEY"},
		Binding: &connection.Binding{Workloads: []connection.Workload{
			{Kind: connection.WorkloadDeployment, Name: "web", Containers: []string{"app"}},
			{Kind: connection.WorkloadCronJob, Name: "web"},
		}},
	}
	id := spec.ID()
	m, ok := MemberOf(spec, web, "7")
	require.True(t, ok)
	assert.Equal(t, Member{
		Connection: "My_KV", ID: id, Mode: connection.BindingEnv, Containers: []string{"app"},
		SecretName: connection.SecretName(id), Keys: []string{"AZURE_KEYVAULT_CLIENTID", "A_KEY"},
		ServiceAccount: "sc-account-00000000-0000-4000-8000-0000000000ab", RestartToken: "7",
	}, m)
	assert.Equal(t, []Ref{web, {Namespace: ns, Kind: connection.WorkloadCronJob, Name: "web"}}, Refs(spec))

	_, ok = MemberOf(spec, Ref{Namespace: "other", Kind: connection.WorkloadDeployment, Name: "web"}, "7")
	assert.False(t, ok, "another namespace")
	_, ok = MemberOf(spec, Ref{Namespace: ns, Kind: connection.WorkloadStatefulSet, Name: "web"}, "7")
	assert.False(t, ok, "another kind")

	spec.Binding.Mode, spec.Binding.NoRestart = connection.BindingVolume, true
	spec.AuthInfo = connection.AuthInfo{AuthType: catalog.AuthSecret}
	m, ok = MemberOf(spec, web, "7")
	require.True(t, ok)
	assert.Empty(t, m.Keys, "volume mode mounts the Secret")
	assert.Empty(t, m.ServiceAccount)
	assert.Empty(t, m.RestartToken, "opted out")

	spec.Binding = nil
	_, ok = MemberOf(spec, web, "7")
	assert.False(t, ok)
	assert.Empty(t, Refs(spec))
}
