package jobrun

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
)

var bindNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func app() *appsv1.Deployment {
	labels := map[string]string{"app": "app"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: "app"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.com/web"}}},
			},
		},
	}
}

func bound(ch connection.Change) connection.Change {
	ch.Spec.Binding = &connection.Binding{Workloads: []connection.Workload{{Kind: connection.WorkloadDeployment, Name: "app"}}}
	return ch
}

func (f *fixture) app() *appsv1.Deployment {
	f.t.Helper()
	d, err := f.client.AppsV1().Deployments(target).Get(context.Background(), "app", metav1.GetOptions{})
	require.NoError(f.t, err)
	return d
}

// runAt runs sc-job once with its clock at now.
func (f *fixture) runAt(now time.Time) Summary {
	f.t.Helper()
	f.client.ClearActions()
	sum, err := f.runner(func(c *Config) { c.Now = func() time.Time { return now } }).Run(context.Background())
	require.NoError(f.t, err)
	return sum
}

// writesOf lists the writes of the last run to the given resources.
func writesOf(f *fixture, resources ...string) []string {
	var out []string
	for _, w := range fakeactions.Writes(f.client.Actions()) {
		for _, r := range resources {
			if strings.Contains(w, " "+r+" ") {
				out = append(out, w)
			}
		}
	}
	return out
}

func workloadWrites(f *fixture) []string { return writesOf(f, "deployments") }

func TestBoundConnectionWiresItsWorkloadAfterRendering(t *testing.T) {
	f := newFixture(t, ownJob(), app())
	f.apply(bound(f.secretChange("db1")))

	f.runAt(bindNow)
	assert.Equal(t, []string{
		"get configmaps sc-system/sc-conn-db1",
		"get secrets sc-system/sc-conn-db1-cred",
		"get namespaces /team-a",
		"get secrets team-a/sc-db1-secret",
		"create secrets team-a/sc-db1-secret",
		"get deployments team-a/app", // the workload after what it references
		"patch deployments team-a/app",
		"update configmaps sc-system/sc-conn-db1",
		"get jobs sc-system/sc-job",
		"create events sc-system/*",
		"delete jobs sc-system/sc-job",
	}, f.ownActions())

	c := f.get("db1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase, c.Status.Message)
	require.NotNil(t, c.Status.Bound)
	assert.Equal(t, []string{"AZURE_REDIS_CONNECTIONSTRING"}, c.Status.Bound.Keys)
	assert.Equal(t, "sc-db1-secret", c.Status.Bound.SecretName)
	assert.NotEmpty(t, c.Status.Bound.RestartToken)
	env := f.app().Spec.Template.Spec.Containers[0].Env
	require.Len(t, env, 1)
	assert.Equal(t, "sc-db1-secret", env[0].ValueFrom.SecretKeyRef.Name)

	// A re-render that changes nothing reads the workload and writes nothing.
	f.runAt(bindNow.Add(time.Minute))
	f.client.ClearActions()
	_, err := f.runner(func(c *Config) { c.RenderAll = true }).Run(context.Background())
	require.NoError(t, err)
	assert.Empty(t, workloadWrites(f))
}

// New Secret data rolls the workload once, after the settle time: the
// render writes the Secret and schedules the restart; the run at the
// scheduled time changes the restart token and says so in an Event.
func TestNewDataRestartsTheWorkloadAfterTheSettleTime(t *testing.T) {
	f := newFixture(t, ownJob(), app())
	ch := bound(f.secretChange("db1"))
	f.apply(ch)
	f.runAt(bindNow)
	token := f.app().Spec.Template.Annotations[bind.AnnotationRestartToken]
	require.NotEmpty(t, token)

	ch.RequestID, ch.Credentials = f.requestID(), connection.Credentials{"AZURE_REDIS_CONNECTIONSTRING": f.cred()}
	f.apply(ch)
	f.runAt(bindNow.Add(time.Minute))
	c := f.get("db1")
	assert.Equal(t, connection.PhasePending, c.Status.Phase)
	assert.Equal(t, connection.ReasonRestartScheduled, c.Status.Reason, c.Status.Message)
	require.NotNil(t, c.Status.RetryAfter)
	assert.Equal(t, bindNow.Add(time.Minute+DefaultRestartSettle), *c.Status.RetryAfter)
	assert.Equal(t, token, f.app().Spec.Template.Annotations[bind.AnnotationRestartToken], "no restart before the settle time")
	at, ok := connection.DueAt(c)
	assert.True(t, ok)
	assert.Equal(t, *c.Status.RetryAfter, at, "due again at the scheduled time")

	f.runAt(*c.Status.RetryAfter)
	c = f.get("db1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase, c.Status.Message)
	assert.Nil(t, c.Status.RetryAfter)
	assert.NotEqual(t, token, f.app().Spec.Template.Annotations[bind.AnnotationRestartToken], "restarted")
	assert.Equal(t, []string{"patch deployments team-a/app"}, workloadWrites(f))
	assert.Contains(t, f.events(), "Normal Restarted sc-conn-db1: restarted Deployment team-a/app for the new data of Secret sc-db1-secret")
}

// Two connections of one workload changed together restart it once.
func TestConnectionsChangedTogetherRestartTheirWorkloadOnce(t *testing.T) {
	f := newFixture(t, ownJob(), app())
	a, b := bound(f.secretChange("a")), bound(f.secretChange("b"))
	b.Spec.CustomizedKeys = map[string]string{"AZURE_REDIS_CONNECTIONSTRING": "B_REDIS"}
	f.apply(a)
	f.apply(b)
	f.runAt(bindNow)
	token := f.app().Spec.Template.Annotations[bind.AnnotationRestartToken]

	for _, ch := range []connection.Change{a, b} {
		ch.RequestID, ch.Credentials = f.requestID(), connection.Credentials{"AZURE_REDIS_CONNECTIONSTRING": f.cred()}
		f.apply(ch)
	}
	f.runAt(bindNow.Add(time.Minute))
	assert.Empty(t, workloadWrites(f), "both held for the settle time")
	assert.Equal(t, connection.ReasonRestartScheduled, f.get("a").Status.Reason)
	assert.Equal(t, connection.ReasonRestartScheduled, f.get("b").Status.Reason)

	f.runAt(bindNow.Add(time.Minute + DefaultRestartSettle))
	assert.Equal(t, []string{"patch deployments team-a/app"}, workloadWrites(f), "one restart for both")
	assert.NotEqual(t, token, f.app().Spec.Template.Annotations[bind.AnnotationRestartToken])
	assert.Equal(t, connection.PhaseSucceeded, f.get("a").Status.Phase)
	assert.Equal(t, connection.PhaseSucceeded, f.get("b").Status.Phase)
}

func TestMissingWorkloadKeepsTheConnectionPendingAndRetried(t *testing.T) {
	f := newFixture(t, ownJob())
	f.apply(bound(f.secretChange("db1")))
	f.runAt(bindNow)
	c := f.get("db1")
	assert.Equal(t, connection.PhasePending, c.Status.Phase)
	assert.Equal(t, connection.ReasonWorkloadNotFound, c.Status.Reason)
	assert.Contains(t, c.Status.Message, "workload not found: Deployment team-a/app")
	require.NotNil(t, c.Status.RetryAfter)

	_, err := f.client.AppsV1().Deployments(target).Create(context.Background(), app(), metav1.CreateOptions{})
	require.NoError(t, err)
	f.runAt(*c.Status.RetryAfter)
	assert.Equal(t, connection.PhaseSucceeded, f.get("db1").Status.Phase)
	assert.Len(t, f.app().Spec.Template.Spec.Containers[0].Env, 1)
}

// Unbinding (an update without the binding) and deleting remove exactly
// what the binding added; a delete unbinds before it deletes the Secret.
func TestUnbindAndDeleteRemoveTheBinding(t *testing.T) {
	f := newFixture(t, ownJob(), app())
	ch := bound(f.secretChange("db1"))
	f.apply(ch)
	f.runAt(bindNow)
	require.Len(t, f.app().Spec.Template.Spec.Containers[0].Env, 1)

	ch.RequestID, ch.Spec.Binding = f.requestID(), nil
	f.apply(ch)
	f.runAt(bindNow.Add(time.Minute))
	assert.Empty(t, f.app().Spec.Template.Spec.Containers[0].Env)
	assert.Nil(t, f.get("db1").Status.Bound)

	ch = bound(ch)
	ch.RequestID = f.requestID()
	f.apply(ch)
	f.runAt(bindNow.Add(2 * time.Minute))
	require.Len(t, f.app().Spec.Template.Spec.Containers[0].Env, 1)

	_, _, err := f.store.Apply(context.Background(), connection.Change{RequestID: f.requestID(), Spec: ch.Spec, Delete: true, DeleteResources: true})
	require.NoError(t, err)
	f.runAt(bindNow.Add(3 * time.Minute))
	assert.Empty(t, f.app().Spec.Template.Spec.Containers[0].Env)
	writes := writesOf(f, "deployments", "secrets")
	assert.Equal(t, []string{"patch deployments team-a/app", "delete secrets team-a/sc-db1-secret", "delete secrets sc-system/sc-conn-db1-cred"}, writes,
		"unbound before the Secret goes")
}

// Two connections that would set the same env var in one container: the
// second is refused (a person renames a key with customizedKeys) and the
// first keeps its binding.
func TestSameKeyFromTwoConnectionsIsRefused(t *testing.T) {
	f := newFixture(t, ownJob(), app())
	f.apply(bound(f.secretChange("a")))
	f.runAt(bindNow)
	f.apply(bound(f.secretChange("b")))
	f.client.ClearActions()
	_, err := f.runner(func(c *Config) { c.Now = func() time.Time { return bindNow.Add(time.Minute) } }).Run(context.Background())
	require.ErrorIs(t, err, ErrFailed)
	c := f.get("b")
	assert.Equal(t, connection.PhaseFailed, c.Status.Phase)
	assert.Equal(t, ReasonBindingRefused, c.Status.Reason)
	assert.Contains(t, c.Status.Message, "AZURE_REDIS_CONNECTIONSTRING")
	assert.Empty(t, workloadWrites(f))
	assert.Equal(t, connection.PhaseSucceeded, f.get("a").Status.Phase)
}

// A re-render of several connections bound to one workload reads it once:
// the second connection's reconcile has the same members as the first's.
func TestReRenderReadsASharedWorkloadOnce(t *testing.T) {
	f := newFixture(t, ownJob(), app())
	for _, name := range []string{"a", "b", "c"} {
		ch := bound(f.secretChange(name))
		ch.Spec.CustomizedKeys = map[string]string{"AZURE_REDIS_CONNECTIONSTRING": strings.ToUpper(name) + "_REDIS"}
		f.apply(ch)
	}
	f.runAt(bindNow)
	require.Len(t, f.app().Spec.Template.Spec.Containers[0].Env, 3)

	f.client.ClearActions()
	_, err := f.runner(func(c *Config) { c.RenderAll = true }).Run(context.Background())
	require.NoError(t, err)
	var gets []string
	for _, a := range fakeactions.Format(f.client.Actions()) {
		if strings.Contains(a, " deployments ") {
			gets = append(gets, a)
		}
	}
	assert.Equal(t, []string{"get deployments team-a/app"}, gets)
}

// One connection's share going bad (the user removed the container it
// names) fails that connection alone: another connection bound to the same
// workload still renders and binds, and the bad one says why when it is
// reconciled itself.
func TestOneBadShareDoesNotFailTheOtherConnections(t *testing.T) {
	d := app()
	d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "sidecar", Image: "example.com/sidecar"})
	f := newFixture(t, ownJob(), d)
	a, b := bound(f.secretChange("a")), bound(f.secretChange("b"))
	b.Spec.CustomizedKeys = map[string]string{"AZURE_REDIS_CONNECTIONSTRING": "B_REDIS"}
	b.Spec.Binding.Workloads[0].Containers = []string{"sidecar"}
	f.apply(a)
	f.apply(b)
	f.runAt(bindNow)
	require.Equal(t, connection.PhaseSucceeded, f.get("b").Status.Phase)

	d = f.app()
	d.Spec.Template.Spec.Containers = d.Spec.Template.Spec.Containers[:1]
	_, err := f.client.AppsV1().Deployments(target).Update(context.Background(), d, metav1.UpdateOptions{})
	require.NoError(t, err)

	a.RequestID, a.Credentials = f.requestID(), connection.Credentials{"AZURE_REDIS_CONNECTIONSTRING": f.cred()}
	f.apply(a)
	f.runAt(bindNow.Add(time.Minute))
	f.runAt(bindNow.Add(time.Minute + DefaultRestartSettle))
	c := f.get("a")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase, c.Status.Message)
	env := f.app().Spec.Template.Spec.Containers[0].Env
	require.Len(t, env, 1)
	assert.Equal(t, "sc-a-secret", env[0].ValueFrom.SecretKeyRef.Name)

	f.client.ClearActions()
	_, err = f.runner(func(c *Config) {
		c.RenderAll, c.Now = true, func() time.Time { return bindNow.Add(2 * time.Minute) }
	}).Run(context.Background())
	require.ErrorIs(t, err, ErrFailed)
	c = f.get("b")
	assert.Equal(t, connection.PhaseFailed, c.Status.Phase)
	assert.Equal(t, ReasonBindingRefused, c.Status.Reason)
	assert.Contains(t, c.Status.Message, `has no container "sidecar"`)
	assert.Equal(t, connection.PhaseSucceeded, f.get("a").Status.Phase, "a's re-render is untouched by b")
}

// A workload that names an unbound connection in its restart-on-change
// annotation restarts when the connection's Secret data changes, and gets
// none of its fields. A create does not look for such workloads.
func TestRestartOnChangeAnnotationRestartsAnUnboundWorkload(t *testing.T) {
	d := app()
	d.Annotations = map[string]string{bind.AnnotationRestartOnChange: "db1"}
	f := newFixture(t, ownJob(), d)
	scheme := runtime.NewScheme()
	require.NoError(t, metav1.AddMetaToScheme(scheme))
	meta := metadatafake.NewSimpleMetadataClient(scheme, &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{Kind: "Deployment", APIVersion: "apps/v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: "app", Annotations: d.Annotations}})
	run := func(now time.Time) {
		t.Helper()
		f.client.ClearActions()
		meta.ClearActions()
		_, err := f.runner(func(c *Config) { c.Now = func() time.Time { return now }; c.Metadata = meta }).Run(context.Background())
		require.NoError(t, err)
	}

	ch := f.secretChange("db1")
	f.apply(ch)
	run(bindNow)
	assert.Empty(t, meta.Actions(), "a create lists no workloads")
	assert.Empty(t, workloadWrites(f))

	ch.RequestID, ch.Credentials = f.requestID(), connection.Credentials{"AZURE_REDIS_CONNECTIONSTRING": f.cred()}
	f.apply(ch)
	run(bindNow.Add(time.Minute))
	assert.Len(t, meta.Actions(), 4, "one metadata LIST per workload kind")
	c := f.get("db1")
	assert.Equal(t, connection.ReasonRestartScheduled, c.Status.Reason, c.Status.Message)
	assert.Nil(t, c.Status.Bound)

	run(*c.Status.RetryAfter)
	assert.Equal(t, []string{"patch deployments team-a/app"}, workloadWrites(f))
	live := f.app()
	assert.NotEmpty(t, live.Spec.Template.Annotations[bind.AnnotationRestartToken])
	assert.Empty(t, live.Spec.Template.Spec.Containers[0].Env, "no field of the connection")
	assert.Equal(t, connection.PhaseSucceeded, f.get("db1").Status.Phase)
	assert.Contains(t, f.events(), "Normal Restarted sc-conn-db1: restarted Deployment team-a/app for the new data of Secret sc-db1-secret")
}

// Without the permission to list workloads, a connection whose data
// changed is still rendered and its bound workloads restarted; only the
// annotation is not looked for.
func TestForbiddenWorkloadListDoesNotFailTheConnection(t *testing.T) {
	f := newFixture(t, ownJob(), app())
	scheme := runtime.NewScheme()
	require.NoError(t, metav1.AddMetaToScheme(scheme))
	meta := metadatafake.NewSimpleMetadataClient(scheme)
	meta.PrependReactor("list", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "", errors.New("RBAC"))
	})
	ch := bound(f.secretChange("db1"))
	f.apply(ch)
	f.runAt(bindNow)
	ch.RequestID, ch.Credentials = f.requestID(), connection.Credentials{"AZURE_REDIS_CONNECTIONSTRING": f.cred()}
	f.apply(ch)
	for _, now := range []time.Time{bindNow.Add(time.Minute), bindNow.Add(time.Minute + DefaultRestartSettle)} {
		f.client.ClearActions()
		_, err := f.runner(func(c *Config) { c.Now = func() time.Time { return now }; c.Metadata = meta }).Run(context.Background())
		require.NoError(t, err)
	}
	c := f.get("db1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase, c.Status.Message)
	assert.Equal(t, []string{"patch deployments team-a/app"}, workloadWrites(f), "the bound workload restarted")
	assert.Contains(t, f.logs.String(), "cannot list workloads")
}
