//go:build integration

package bind_integration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
)

func secretRef(secret, key string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}
}

// The whole life of a binding on a user's Deployment: two members added,
// one removed, then all, after which the Deployment is the user's again to
// the byte.
func TestBindingAddsAndRemovesExactlyItsOwnFields(t *testing.T) {
	e := setup(t)
	e.userApply(connection.WorkloadDeployment, "web", deploymentYAML("web", ""))
	before := e.deployment("web")
	userFields := managerFields(before.ManagedFields, "kubectl")
	require.NotEmpty(t, userFields)

	a := envMember("blob", "AZURE_STORAGEBLOB_CONNECTIONSTRING", "B_KEY")
	a.ServiceAccount = "sc-account-00000000-0000-4000-8000-0000000000ab"
	b := volumeMember("files")
	b.Containers = []string{"app"}
	res, reqs, err := e.reconcile(e.ref(connection.WorkloadDeployment, "web"), a, b)
	require.NoError(t, err)
	assert.Equal(t, e.getApply("web"), reqs)
	assert.Equal(t, bind.Result{Wrote: true, Containers: []string{"app", "sidecar"}}, res)

	d := e.deployment("web")
	tmpl := d.Spec.Template
	app, sidecar := tmpl.Spec.Containers[0], tmpl.Spec.Containers[1]
	assert.Equal(t, []corev1.EnvVar{
		{Name: "MODE", Value: "prod"},
		{Name: "AZURE_STORAGEBLOB_CONNECTIONSTRING", ValueFrom: secretRef("sc-blob-secret", "AZURE_STORAGEBLOB_CONNECTIONSTRING")},
		{Name: "B_KEY", ValueFrom: secretRef("sc-blob-secret", "B_KEY")},
		{Name: "SERVICE_BINDING_ROOT", Value: "/bindings"},
	}, app.Env)
	assert.Equal(t, []corev1.VolumeMount{{Name: "sc-files-binding", MountPath: "/bindings/files", ReadOnly: true}}, app.VolumeMounts)
	assert.Equal(t, []corev1.EnvVar{
		{Name: "AZURE_STORAGEBLOB_CONNECTIONSTRING", ValueFrom: secretRef("sc-blob-secret", "AZURE_STORAGEBLOB_CONNECTIONSTRING")},
		{Name: "B_KEY", ValueFrom: secretRef("sc-blob-secret", "B_KEY")},
	}, sidecar.Env)
	assert.Empty(t, sidecar.VolumeMounts)
	require.Len(t, tmpl.Spec.Volumes, 1)
	assert.Equal(t, "sc-files-binding", tmpl.Spec.Volumes[0].Name)
	assert.Equal(t, "sc-files-secret", tmpl.Spec.Volumes[0].Secret.SecretName)
	assert.Equal(t, a.ServiceAccount, tmpl.Spec.ServiceAccountName)
	assert.Equal(t, map[string]string{"app": "web", bind.LabelWorkloadIdentityUse: "true"}, tmpl.Labels)
	assert.NotEmpty(t, tmpl.Annotations[bind.AnnotationRestartToken])
	assert.NotEmpty(t, d.Annotations[bind.AnnotationBindingHash])
	assert.Equal(t, "example.com/app:1", app.Image, "the user's fields stay")
	assert.Equal(t, int32(0), *d.Spec.Replicas)
	assert.Equal(t, userFields, managerFields(d.ManagedFields, "kubectl"), "the user still owns exactly what it applied")

	// the same members again: one GET, nothing written
	st := e.state("web")
	res, reqs, err = e.reconcile(e.ref(connection.WorkloadDeployment, "web"), b, a)
	require.NoError(t, err)
	assert.Equal(t, e.get("web"), reqs)
	assert.False(t, res.Wrote)
	assert.Equal(t, st, e.state("web"))

	// the volume member leaves: its volume, mount and root go, nothing else
	_, reqs, err = e.reconcile(e.ref(connection.WorkloadDeployment, "web"), a)
	require.NoError(t, err)
	assert.Equal(t, e.getApply("web"), reqs)
	d = e.deployment("web")
	app = d.Spec.Template.Spec.Containers[0]
	assert.Equal(t, []string{"MODE", "AZURE_STORAGEBLOB_CONNECTIONSTRING", "B_KEY"}, names(app.Env))
	assert.Empty(t, app.VolumeMounts)
	assert.Empty(t, d.Spec.Template.Spec.Volumes)
	assert.Equal(t, a.ServiceAccount, d.Spec.Template.Spec.ServiceAccountName)
	assert.Len(t, d.Spec.Template.Spec.Containers[1].Env, 2)

	// nobody left: the Deployment is the user's again, to the byte
	res, reqs, err = e.reconcile(e.ref(connection.WorkloadDeployment, "web"))
	require.NoError(t, err)
	assert.Equal(t, e.getApply("web"), reqs)
	assert.Equal(t, bind.Result{Wrote: true}, res)
	after := e.deployment("web")
	assert.Equal(t, mustJSON(t, before.Spec), mustJSON(t, after.Spec))
	for _, k := range []string{bind.AnnotationBindingHash, bind.AnnotationRestartedAt} {
		assert.NotContains(t, after.Annotations, k)
	}
	assert.Equal(t, userFields, managerFields(after.ManagedFields, "kubectl"))
	assert.Empty(t, managerFields(after.ManagedFields, bind.FieldManager), "our manager's entry is gone")

	// and stays so: no write
	_, reqs, err = e.reconcile(e.ref(connection.WorkloadDeployment, "web"))
	require.NoError(t, err)
	assert.Equal(t, e.get("web"), reqs)
}

func names(env []corev1.EnvVar) []string {
	var out []string
	for _, e := range env {
		out = append(out, e.Name)
	}
	return out
}

func TestUsersEnvVarOfTheSameNameIsRefused(t *testing.T) {
	e := setup(t)
	e.userApply(connection.WorkloadDeployment, "web", deploymentYAML("web", ""))
	st := e.state("web")

	m := envMember("blob", "MODE")
	res, reqs, err := e.reconcile(e.ref(connection.WorkloadDeployment, "web"), m)
	require.NoError(t, err)
	refusal := res.Refusal(m.ID)
	require.ErrorIs(t, refusal, bind.ErrBindingConflict)
	assert.Contains(t, refusal.Error(), "env[name=MODE] is already set by another manager")
	assert.Equal(t, e.get("web"), reqs)
	assert.True(t, bind.Permanent(refusal))
	assert.Equal(t, st, e.state("web"), "nothing changed")
}

// A field the user owns with another value is the API server's conflict
// to report: the apply is refused whole, never forced.
func TestServerSideApplyConflictIsRefusedWhole(t *testing.T) {
	e := setup(t)
	e.userApply(connection.WorkloadDeployment, "web", deploymentYAML("web", "")+
		"    metadata:\n      labels: {app: web, azure.workload.identity/use: \"false\"}\n")
	st := e.state("web")
	require.Equal(t, "false", e.deployment("web").Spec.Template.Labels[bind.LabelWorkloadIdentityUse])

	m := envMember("kv", "K")
	m.ServiceAccount = "sc-account-1"
	_, reqs, err := e.reconcile(e.ref(connection.WorkloadDeployment, "web"), m)
	require.ErrorIs(t, err, bind.ErrBindingConflict)
	assert.Equal(t, e.getApply("web"), reqs)
	assert.Contains(t, err.Error(), `.spec.template.metadata.labels.azure.workload.identity/use`)
	assert.Contains(t, err.Error(), `"kubectl"`, "the message names the other manager")
	assert.True(t, bind.Permanent(err))
	assert.Equal(t, st, e.state("web"), "nothing changed")
}

func TestAnotherServiceAccountIsRefused(t *testing.T) {
	e := setup(t)
	e.userApply(connection.WorkloadDeployment, "web", deploymentYAML("web", "      serviceAccountName: web-runner\n"))
	st := e.state("web")
	m := envMember("kv", "K")
	m.ServiceAccount = "sc-account-1"
	res, reqs, err := e.reconcile(e.ref(connection.WorkloadDeployment, "web"), m)
	require.NoError(t, err)
	require.ErrorIs(t, res.Refusal(m.ID), bind.ErrServiceAccountConflict)
	assert.Contains(t, res.Refusal(m.ID).Error(), "spec.template.spec.serviceAccountName is web-runner, set by another manager; connection kv (workload identity) needs sc-account-1")
	assert.Equal(t, e.get("web"), reqs)
	assert.Equal(t, st, e.state("web"))
}

func TestRestartIsDeferredWithinTheWindow(t *testing.T) {
	e := setup(t)
	e.userApply(connection.WorkloadDeployment, "web", deploymentYAML("web", ""))
	ref := e.ref(connection.WorkloadDeployment, "web")
	m := envMember("blob", "K")
	res, _, err := e.reconcile(ref, m)
	require.NoError(t, err)
	require.False(t, res.Restarted)
	first := e.deployment("web").Spec.Template.Annotations[bind.AnnotationRestartToken]

	m.RestartToken = "2"
	res, reqs, err := e.reconcile(ref, m)
	require.NoError(t, err)
	assert.Equal(t, e.getApply("web"), reqs)
	assert.True(t, res.Restarted)
	d := e.deployment("web")
	second := d.Spec.Template.Annotations[bind.AnnotationRestartToken]
	st := e.state("web")
	assert.NotEqual(t, first, second)
	assert.Equal(t, t0.Format(time.RFC3339), d.Annotations[bind.AnnotationRestartedAt])

	e.now = t0.Add(5 * time.Second)
	m.RestartToken = "3"
	res, reqs, err = e.reconcile(ref, m)
	require.NoError(t, err)
	assert.Equal(t, e.get("web"), reqs, "deferred: nothing to write")
	assert.Equal(t, t0.Add(bind.DefaultWindow), res.DeferredUntil)
	assert.False(t, res.Restarted)
	assert.Equal(t, st, e.state("web"), "no token change")

	e.now = t0.Add(bind.DefaultWindow)
	res, reqs, err = e.reconcile(ref, m)
	require.NoError(t, err)
	assert.Equal(t, e.getApply("web"), reqs, "one write")
	assert.True(t, res.Restarted)
	assert.True(t, res.DeferredUntil.IsZero())
	d = e.deployment("web")
	assert.NotEqual(t, second, d.Spec.Template.Annotations[bind.AnnotationRestartToken])
	assert.Equal(t, e.now.Format(time.RFC3339), d.Annotations[bind.AnnotationRestartedAt])
}

func TestMissingWorkloadAndContainer(t *testing.T) {
	e := setup(t)
	_, reqs, err := e.reconcile(e.ref(connection.WorkloadDeployment, "web"), envMember("blob", "K"))
	require.ErrorIs(t, err, bind.ErrWorkloadNotFound)
	assert.Equal(t, e.get("web"), reqs)

	e.userApply(connection.WorkloadDeployment, "web", deploymentYAML("web", ""))
	m := envMember("blob", "K")
	m.Containers = []string{"worker"}
	res, reqs, err := e.reconcile(e.ref(connection.WorkloadDeployment, "web"), m)
	require.NoError(t, err)
	require.ErrorIs(t, res.Refusal(m.ID), bind.ErrContainerNotFound)
	assert.Equal(t, e.get("web"), reqs)
}
