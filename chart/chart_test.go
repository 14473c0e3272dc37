package chart

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/sc-extension/sc-extension/internal/testkit/charttest"
)

func inventory(r rendered) []string {
	var out []string
	for _, o := range r.objects {
		out = append(out, fmt.Sprintf("%s/%s", o.GetObjectKind().GroupVersionKind().Kind, objectName(o)))
	}
	sort.Strings(out)
	return out
}

func TestRenderDefaultsInventory(t *testing.T) {
	r := render(t, minimal())
	assert.Equal(t, []string{
		"ClusterRole/sc-extension-agent",
		"ClusterRole/sc-extension-job",
		"ClusterRole/sc-extension-job-write",
		"ClusterRoleBinding/sc-extension-agent",
		"ClusterRoleBinding/sc-extension-job",
		"ClusterRoleBinding/sc-extension-job-write",
		"Deployment/sc-agent",
		"Job/sc-job-render",
		"NetworkPolicy/sc-agent",
		"NetworkPolicy/sc-extension-test",
		"NetworkPolicy/sc-job",
		"Pod/sc-extension-test-agent-ready",
		"Role/sc-extension-agent",
		"Role/sc-extension-job",
		"RoleBinding/sc-extension-agent",
		"RoleBinding/sc-extension-job",
		"Service/sc-agent",
		"ServiceAccount/sc-agent",
		"ServiceAccount/sc-job",
		"ValidatingAdmissionPolicy/sc-extension-agent",
		"ValidatingAdmissionPolicy/sc-extension-agent-jobs",
		"ValidatingAdmissionPolicy/sc-extension-job",
		"ValidatingAdmissionPolicy/sc-extension-job-cronjobs",
		"ValidatingAdmissionPolicy/sc-extension-job-daemonsets",
		"ValidatingAdmissionPolicy/sc-extension-job-workloads",
		"ValidatingAdmissionPolicy/sc-extension-owner-label",
		"ValidatingAdmissionPolicyBinding/sc-extension-agent",
		"ValidatingAdmissionPolicyBinding/sc-extension-agent-jobs",
		"ValidatingAdmissionPolicyBinding/sc-extension-job",
		"ValidatingAdmissionPolicyBinding/sc-extension-job-cronjobs",
		"ValidatingAdmissionPolicyBinding/sc-extension-job-daemonsets",
		"ValidatingAdmissionPolicyBinding/sc-extension-job-workloads",
		"ValidatingAdmissionPolicyBinding/sc-extension-owner-label",
	}, inventory(r))
	for _, o := range r.objects {
		m := o.(metav1.Object)
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
			"app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "helm.sh/chart"} {
			assert.NotEmpty(t, m.GetLabels()[k], "%s lacks label %s", m.GetName(), k)
		}
		// Never the product's own ownership marker: the agent's drift watch
		// selects managed-by=sc-extension and must not see chart objects.
		assert.Equal(t, "Helm", m.GetLabels()["app.kubernetes.io/managed-by"])
		if ns := m.GetNamespace(); ns != "" {
			assert.Equal(t, releaseNamespace, ns, "%s", m.GetName())
		}
	}
}

func TestAgentDeploymentDefaults(t *testing.T) {
	d := find[*appsv1.Deployment](t, render(t, minimal()), "sc-agent")
	assert.EqualValues(t, 1, *d.Spec.Replicas)
	pod := d.Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	assert.Equal(t, "localhost/sc-extension/agent:dev", c.Image)
	assert.Equal(t, corev1.PullIfNotPresent, c.ImagePullPolicy)
	assert.Equal(t, "sc-agent", pod.ServiceAccountName)
	assert.Equal(t, []corev1.Toleration{{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists}}, pod.Tolerations)
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, "/healthz", c.StartupProbe.HTTPGet.Path)

	args := argMap(c.Args)
	assert.Equal(t, "c1", args["--cluster"])
	assert.Equal(t, releaseNamespace, args["--namespace"])
	assert.Equal(t, "nats://10.0.0.5:4222", args["--nats-url"])
	assert.Equal(t, "localhost/sc-extension/job:dev", args["--job-image"])
	assert.Equal(t, "sc-job", args["--job-service-account"])
	assert.Equal(t, "sc-agent", args["--lease-name"])
	assert.Equal(t, "15m", args["--job-keep-failed-for"])
	assert.Equal(t, "text", args["--job-log-format"])
	assert.Equal(t, "info", args["--log-level"])
	assert.Equal(t, ":8080", args["--metrics-addr"])
	// sc-job pods get the same tolerations as the agent, as JSON the agent parses.
	var tol []corev1.Toleration
	require.NoError(t, json.Unmarshal([]byte(args["--job-tolerations"]), &tol))
	assert.Equal(t, pod.Tolerations, tol)
	var res corev1.ResourceRequirements
	require.NoError(t, json.Unmarshal([]byte(args["--job-resources"]), &res))
	assert.Equal(t, "64Mi", res.Requests.Memory().String())
	assert.NotContains(t, args, "--nats-creds", "no credentials configured")
	assert.NotContains(t, args, "--watch-namespaces")
	assert.NotContains(t, args, "--job-image-pull-secrets")
	for _, e := range c.Env {
		assert.NotContains(t, e.Name, "NATS", "no credentials configured, yet %s is set", e.Name)
	}
}

func argMap(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		m[k] = v
	}
	return m
}

func TestNATSCredentialsVariants(t *testing.T) {
	t.Run("userPassword reads the Secret through secretKeyRef", func(t *testing.T) {
		d := find[*appsv1.Deployment](t, render(t, with(map[string]any{"nats.credentialsSecret": "sc-nats"})), "sc-agent")
		c := d.Spec.Template.Spec.Containers[0]
		env := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			env[e.Name] = e
		}
		for name, key := range map[string]string{"SC_NATS_USER": "user", "SC_NATS_PASSWORD": "password"} {
			e, ok := env[name]
			require.True(t, ok, name)
			assert.Empty(t, e.Value, "%s must come from the Secret, never a literal", name)
			require.NotNil(t, e.ValueFrom.SecretKeyRef)
			assert.Equal(t, "sc-nats", e.ValueFrom.SecretKeyRef.Name)
			assert.Equal(t, key, e.ValueFrom.SecretKeyRef.Key)
		}
		assert.NotContains(t, argMap(c.Args), "--nats-creds")
	})
	t.Run("creds mounts the file read-only", func(t *testing.T) {
		d := find[*appsv1.Deployment](t, render(t, with(map[string]any{
			"nats.credentialsSecret": "sc-nats", "nats.credentialsFormat": "creds"})), "sc-agent")
		pod := d.Spec.Template.Spec
		c := pod.Containers[0]
		assert.Equal(t, "/etc/sc-extension/nats/creds", argMap(c.Args)["--nats-creds"])
		var vol *corev1.Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Secret != nil {
				vol = &pod.Volumes[i]
			}
		}
		require.NotNil(t, vol)
		assert.Equal(t, "sc-nats", vol.Secret.SecretName)
		assert.Equal(t, []corev1.KeyToPath{{Key: "creds", Path: "creds"}}, vol.Secret.Items)
		var mounted bool
		for _, m := range c.VolumeMounts {
			if m.Name == vol.Name {
				mounted = true
				assert.True(t, m.ReadOnly)
			}
		}
		assert.True(t, mounted)
		for _, e := range c.Env {
			assert.NotContains(t, e.Name, "NATS")
		}
	})
}

func TestVariants(t *testing.T) {
	r := render(t, with(map[string]any{
		"replicaCount":     3,
		"watchNamespaces":  []any{"team-a", "team-b"},
		"deniedNamespaces": []any{"kube-system"},
		"logLevel":         "debug",
		"image.registry":   "myregistry.azurecr.io",
		"image.tag":        "1.2.3",
		"image.job.tag":    "1.2.4",
		"image.pullPolicy": "Always",
		"job.logFormat":    "json",
		"imagePullSecrets": []any{map[string]any{"name": "acr-pull"}, map[string]any{"name": "mirror-pull"}},
		"nodeSelector":     map[string]any{"pool": "system"},
		"tolerations":      []any{},
	}))
	d := find[*appsv1.Deployment](t, r, "sc-agent")
	assert.EqualValues(t, 3, *d.Spec.Replicas)
	pdb := find[*policyv1.PodDisruptionBudget](t, r, "sc-agent")
	assert.Equal(t, 1, pdb.Spec.MinAvailable.IntValue())
	c := d.Spec.Template.Spec.Containers[0]
	assert.Equal(t, "myregistry.azurecr.io/sc-extension/agent:1.2.3", c.Image)
	assert.Equal(t, corev1.PullAlways, c.ImagePullPolicy)
	args := argMap(c.Args)
	assert.Equal(t, "team-a,team-b", args["--watch-namespaces"])
	assert.Equal(t, "kube-system", args["--denied-namespaces"])
	assert.Equal(t, "debug", args["--log-level"])
	assert.Equal(t, "myregistry.azurecr.io/sc-extension/job:1.2.4", args["--job-image"])
	assert.Equal(t, "Always", args["--job-image-pull-policy"])
	assert.Equal(t, "json", args["--job-log-format"])
	// A private registry serves sc-job too: its pods get the same pull secrets.
	assert.Equal(t, "acr-pull,mirror-pull", args["--job-image-pull-secrets"])
	assert.Equal(t, []corev1.LocalObjectReference{{Name: "acr-pull"}, {Name: "mirror-pull"}}, d.Spec.Template.Spec.ImagePullSecrets)
	// Helm merges maps with the defaults: the default os selector stays.
	assert.Equal(t, `{"kubernetes.io/os":"linux","pool":"system"}`, args["--job-node-selector"])
	assert.NotContains(t, args, "--job-tolerations")
	assert.Empty(t, d.Spec.Template.Spec.Tolerations)
	assert.Equal(t, map[string]string{"kubernetes.io/os": "linux", "pool": "system"}, d.Spec.Template.Spec.NodeSelector)
	hook := find[*batchv1.Job](t, r, "sc-job-render")
	assert.Equal(t, "myregistry.azurecr.io/sc-extension/job:1.2.4", hook.Spec.Template.Spec.Containers[0].Image)
	// The render hook's sc-job runs under the agent's namespace policy, so a
	// connection stored before its namespace was denied is not rendered again.
	hookArgs := argMap(hook.Spec.Template.Spec.Containers[0].Args)
	assert.Equal(t, "team-a,team-b", hookArgs["--watch-namespaces"])
	assert.Equal(t, "kube-system", hookArgs["--denied-namespaces"])

	// One replica needs no PDB; one would block every node drain.
	assert.Empty(t, all[*policyv1.PodDisruptionBudget](render(t, minimal())))
}

func TestMetricsToggle(t *testing.T) {
	on := find[*appsv1.Deployment](t, render(t, minimal()), "sc-agent")
	assert.Equal(t, "true", on.Spec.Template.Annotations["prometheus.io/scrape"])
	assert.Equal(t, "8080", on.Spec.Template.Annotations["prometheus.io/port"])
	off := find[*appsv1.Deployment](t, render(t, with(map[string]any{"metrics.enabled": false, "metrics.port": 9090})), "sc-agent")
	assert.NotContains(t, off.Spec.Template.Annotations, "prometheus.io/scrape")
	// Probes still work: the health server runs regardless.
	c := off.Spec.Template.Spec.Containers[0]
	assert.EqualValues(t, 9090, c.Ports[0].ContainerPort)
	assert.Equal(t, ":9090", argMap(c.Args)["--metrics-addr"])
}

func TestHooks(t *testing.T) {
	r := render(t, minimal())
	hook := find[*batchv1.Job](t, r, "sc-job-render")
	assert.Equal(t, "post-install,post-upgrade", hook.Annotations["helm.sh/hook"])
	assert.Equal(t, "before-hook-creation,hook-succeeded", hook.Annotations["helm.sh/hook-delete-policy"])
	assert.NotEmpty(t, hook.Annotations["helm.sh/hook-weight"])
	pod := hook.Spec.Template.Spec
	assert.Equal(t, "sc-job", pod.ServiceAccountName)
	assert.Equal(t, corev1.RestartPolicyNever, pod.RestartPolicy)
	args := argMap(pod.Containers[0].Args)
	assert.Contains(t, args, "--render-all")
	assert.Equal(t, "report", args["--connection-failures"], "a tenant's failed connection never fails helm upgrade")
	assert.Equal(t, "sc-job-render", args["--job-name"], "the hook must never delete the agent's sc-job")
	assert.NotContains(t, args, "--watch-namespaces", "empty: every namespace but the denied ones")
	assert.NotContains(t, args, "--denied-namespaces", "empty: sc-job adds the release and kube-* namespaces itself")
	assert.EqualValues(t, 1, *hook.Spec.BackoffLimit)
	assert.EqualValues(t, 600, *hook.Spec.ActiveDeadlineSeconds)

	test := find[*corev1.Pod](t, r, "sc-extension-test-agent-ready")
	assert.Equal(t, "test", test.Annotations["helm.sh/hook"])
	c := test.Spec.Containers[0]
	assert.Equal(t, "localhost/sc-extension/scctl:dev", c.Image)
	assert.Equal(t, "probe", c.Args[0])
	assert.Equal(t, "http://$(SC_AGENT_SERVICE_HOST):$(SC_AGENT_SERVICE_PORT_HTTP)/readyz", c.Args[1])
	// The service-link variable names follow from the Service's name and port name.
	svc := find[*corev1.Service](t, r, "sc-agent")
	assert.Equal(t, "http", svc.Spec.Ports[0].Name)
	require.NotNil(t, test.Spec.EnableServiceLinks)
	assert.True(t, *test.Spec.EnableServiceLinks)

	off := render(t, with(map[string]any{"job.renderOnUpgrade": false}))
	assert.Empty(t, all[*batchv1.Job](off))
}

func TestNotesTellWhatIsKept(t *testing.T) {
	n := render(t, minimal()).notes
	for _, want := range []string{
		`cluster "c1"`,
		"scctl connection create storage-blob --cluster c1 --server nats://10.0.0.5:4222",
		"kubectl -n sc-system logs job/sc-job",
		"helm test sc-extension -n sc-system",
		"sc-conn-<id>-cred",
		"sc-<connection>-secret",
		"sc-account-<clientId>",
		"kubectl delete secret,serviceaccount -A -l app.kubernetes.io/managed-by=sc-extension",
	} {
		assert.Contains(t, n, want)
	}
}

// The chart has no place for a credential: the schema refuses any extra key,
// and even with schema validation skipped a stray value is never rendered.
func TestNoCredentialValueRendered(t *testing.T) {
	const secret = "cred-VALUE-7f3a9c"
	c := loadChart(t)
	user := with(map[string]any{"nats.credentialsSecret": "sc-nats", "nats.password": secret, "nats.user": secret})
	_, err := values(t, c, user)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)

	vals, err := charttest.Values(c, user, releaseNamespace, false)
	require.NoError(t, err)
	r := renderValues(t, c, vals)
	assert.NotContains(t, r.raw, secret)
	for _, o := range r.objects {
		for _, spec := range podSpecs(o) {
			for _, ctr := range append(spec.InitContainers, spec.Containers...) {
				for _, e := range ctr.Env {
					assert.Empty(t, e.Value, "env %s of %s must not be a literal", e.Name, objectName(o))
				}
			}
		}
	}
}

// podSpecs returns every pod template an object carries.
func podSpecs(o runtime.Object) []*corev1.PodSpec {
	switch v := o.(type) {
	case *appsv1.Deployment:
		return []*corev1.PodSpec{&v.Spec.Template.Spec}
	case *batchv1.Job:
		return []*corev1.PodSpec{&v.Spec.Template.Spec}
	case *corev1.Pod:
		return []*corev1.PodSpec{&v.Spec}
	}
	return nil
}

// The agent's client rate goes to the agent; sc-job's rate and workers go
// to the agent (which passes them on) and to the render hook alike, as the
// numbers the binaries parse.
func TestClientRatesAndWorkers(t *testing.T) {
	r := render(t, with(map[string]any{"kubeAPI.qps": 2.5, "kubeAPI.burst": 300, "job.qps": 750, "job.burst": 1500, "job.workers": 32}))
	args := argMap(find[*appsv1.Deployment](t, r, "sc-agent").Spec.Template.Spec.Containers[0].Args)
	for flag, want := range map[string]string{
		"--kube-api-qps": "2.5", "--kube-api-burst": "300", "--job-qps": "750", "--job-burst": "1500", "--job-workers": "32",
	} {
		assert.Equal(t, want, args[flag], flag)
	}
	hook := argMap(find[*batchv1.Job](t, r, "sc-job-render").Spec.Template.Spec.Containers[0].Args)
	for flag, want := range map[string]string{"--qps": "750", "--burst": "1500", "--workers": "32"} {
		assert.Equal(t, want, hook[flag], flag)
	}
}
