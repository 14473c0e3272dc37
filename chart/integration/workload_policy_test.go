//go:build integration

package chart_integration

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// The workloads the binding rows patch: a tenant's Deployment and CronJob,
// and a Deployment in kube-system that no binding may reach.
const (
	tenantApp    = "app"
	tenantCron   = "nightly"
	tenantDaemon = "agent"
	systemApp    = "system-app"
	appImage     = "registry.example/app:1"

	workloadPolicy = "sc-extension-job-workloads"
	daemonPolicy   = "sc-extension-job-daemonsets"
	cronPolicy     = "sc-extension-job-cronjobs"
)

func podTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyOnFailure,
			Containers: []corev1.Container{{Name: "app", Image: appImage,
				Env: []corev1.EnvVar{{Name: "USER_VAR", Value: "1"}}}},
		},
	}
}

func deployment(namespace, name string) *appsv1.Deployment {
	tpl := podTemplate()
	tpl.Spec.RestartPolicy = corev1.RestartPolicyAlways
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			Template: tpl,
		},
	}
}

func workloadFixtures(ctx context.Context, t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	for _, d := range []*appsv1.Deployment{deployment(tenantNS, tenantApp), deployment("kube-system", systemApp)} {
		_, err := cs.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
		require.NoError(t, err, d.Name)
	}
	cron := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: tenantCron},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{
			Spec: batchv1.JobSpec{Template: podTemplate()}}},
	}
	_, err := cs.BatchV1().CronJobs(tenantNS).Create(ctx, cron, metav1.CreateOptions{})
	require.NoError(t, err)
	d := deployment(tenantNS, tenantDaemon)
	ds := &appsv1.DaemonSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.DaemonSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template}}
	_, err = cs.AppsV1().DaemonSets(tenantNS).Create(ctx, ds, metav1.CreateOptions{})
	require.NoError(t, err)
}

// patchPod patches the pod template of a Deployment (or, with cron, of a
// CronJob's Jobs) with a strategic merge patch of spec, as sc-job's
// server-side apply would reach the same fields.
func patchPod(namespace, name string, cron bool, pod map[string]any) func(context.Context, identity) error {
	return patchTemplate(namespace, name, cron, map[string]any{"spec": pod})
}

func patchTemplate(namespace, name string, cron bool, tpl map[string]any) func(context.Context, identity) error {
	spec := map[string]any{"template": tpl}
	if cron {
		spec = map[string]any{"jobTemplate": map[string]any{"spec": spec}}
	}
	kind := "deployments"
	if cron {
		kind = "cronjobs"
	}
	return patchSpec(namespace, kind, name, spec)
}

// patchSpec patches a workload's spec (kind: its resource) as sc-job.
func patchSpec(namespace, kind, name string, spec map[string]any) func(context.Context, identity) error {
	return func(ctx context.Context, id identity) error {
		body, err := json.Marshal(map[string]any{"spec": spec})
		if err != nil {
			return err
		}
		switch kind {
		case "cronjobs":
			_, err = id.cs.BatchV1().CronJobs(namespace).Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{})
		case "daemonsets":
			_, err = id.cs.AppsV1().DaemonSets(namespace).Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{})
		default:
			_, err = id.cs.AppsV1().Deployments(namespace).Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{})
		}
		return err
	}
}

func container(fields map[string]any) map[string]any {
	fields["name"] = "app"
	return map[string]any{"containers": []any{fields}}
}

func secretEnv(name, secret string) map[string]any {
	return map[string]any{"name": name, "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": secret, "key": name}}}
}

// workloadActions: what a binding writes into a workload, and what the
// workload policies keep sc-job from doing with its get and patch.
func workloadActions() []action {
	return []action{
		{name: "bind a Deployment: env from its rendered Secret", want: allowed,
			do: patchPod(tenantNS, tenantApp, false, container(map[string]any{"env": []any{secretEnv("AZURE_STORAGEBLOB_RESOURCEENDPOINT", "sc-c1-secret")}}))},
		{name: "bind a Deployment: a binding volume and its mount", want: allowed, do: patchPod(tenantNS, tenantApp, false, map[string]any{
			"volumes": []any{map[string]any{"name": "sc-c1-binding", "secret": map[string]any{"secretName": "sc-c1-secret"}}},
			"containers": []any{map[string]any{"name": "app",
				"env":          []any{map[string]any{"name": "SERVICE_BINDING_ROOT", "value": "/bindings"}},
				"volumeMounts": []any{map[string]any{"name": "sc-c1-binding", "mountPath": "/bindings/c1", "readOnly": true}}}},
		})},
		{name: "bind a Deployment: workload identity", want: allowed, do: patchTemplate(tenantNS, tenantApp, false, map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"azure.workload.identity/use": "true"},
				"annotations": map[string]any{"servicelinker.sc-extension.io/restart-token": "abc"}},
			"spec": map[string]any{"serviceAccountName": "sc-account-c1"},
		})},
		{name: "unbind workload identity", want: allowed, do: patchTemplate(tenantNS, tenantApp, false, map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"azure.workload.identity/use": nil}},
			"spec":     map[string]any{"serviceAccountName": nil, "serviceAccount": nil},
		})},
		{name: "bind a CronJob", want: allowed,
			do: patchPod(tenantNS, tenantCron, true, container(map[string]any{"env": []any{secretEnv("K", "sc-c1-secret")}}))},
		{name: "bind a DaemonSet", want: allowed, do: patchSpec(tenantNS, "daemonsets", tenantDaemon, map[string]any{"template": map[string]any{
			"spec": container(map[string]any{"env": []any{secretEnv("K", "sc-c1-secret")}})}})},
		{name: "read a workload", want: allowed, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.AppsV1().Deployments(tenantNS).Get(ctx, tenantApp, metav1.GetOptions{})
			return err
		}},

		{name: "change a Deployment's image", want: policy, policyName: workloadPolicy,
			do: patchPod(tenantNS, tenantApp, false, container(map[string]any{"image": "registry.example/miner:1"}))},
		{name: "change a CronJob's command", want: policy, policyName: cronPolicy,
			do: patchPod(tenantNS, tenantCron, true, container(map[string]any{"command": []any{"sh", "-c", "curl evil"}}))},
		{name: "change a DaemonSet's image", want: policy, policyName: daemonPolicy, do: patchSpec(tenantNS, "daemonsets", tenantDaemon, map[string]any{"template": map[string]any{
			"spec": container(map[string]any{"image": "registry.example/miner:1"})}})},
		{name: "read a tenant's Secret through envFrom", want: policy, policyName: workloadPolicy,
			do: patchPod(tenantNS, tenantApp, false, container(map[string]any{"envFrom": []any{map[string]any{"secretRef": map[string]any{"name": "tenant-db"}}}}))},
		{name: "run a command in a liveness probe", want: policy, policyName: workloadPolicy,
			do: patchPod(tenantNS, tenantApp, false, container(map[string]any{"livenessProbe": map[string]any{"exec": map[string]any{"command": []any{"sh", "-c", "curl evil"}}}}))},
		{name: "scale a Deployment through its spec", want: policy, policyName: workloadPolicy,
			do: patchSpec(tenantNS, "deployments", tenantApp, map[string]any{"replicas": 50})},
		{name: "reschedule a CronJob", want: policy, policyName: cronPolicy,
			do: patchSpec(tenantNS, "cronjobs", tenantCron, map[string]any{"schedule": "* * * * *"})},
		{name: "annotate the pods", want: policy, policyName: workloadPolicy, do: patchTemplate(tenantNS, tenantApp, false, map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}})},
		{name: "add a container", want: policy, policyName: workloadPolicy, do: patchPod(tenantNS, tenantApp, false, map[string]any{
			"containers": []any{map[string]any{"name": "sidecar", "image": "registry.example/miner:1"}}})},
		{name: "make a container privileged", want: policy, policyName: workloadPolicy,
			do: patchPod(tenantNS, tenantApp, false, container(map[string]any{"securityContext": map[string]any{"privileged": true}}))},
		{name: "read a tenant's Secret into the environment", want: policy, policyName: workloadPolicy,
			do: patchPod(tenantNS, tenantApp, false, container(map[string]any{"env": []any{secretEnv("DB", "tenant-db")}}))},
		{name: "set a plain env value", want: policy, policyName: workloadPolicy,
			do: patchPod(tenantNS, tenantApp, false, container(map[string]any{"env": []any{map[string]any{"name": "HTTP_PROXY", "value": "http://evil"}}}))},
		{name: "mount a hostPath", want: policy, policyName: workloadPolicy, do: patchPod(tenantNS, tenantApp, false, map[string]any{
			"volumes": []any{map[string]any{"name": "sc-root-binding", "hostPath": map[string]any{"path": "/"}}}})},
		{name: "mount a tenant's Secret", want: policy, policyName: workloadPolicy, do: patchPod(tenantNS, tenantApp, false, map[string]any{
			"volumes": []any{map[string]any{"name": "sc-db-binding", "secret": map[string]any{"secretName": "tenant-db"}}}})},
		{name: "run as another ServiceAccount", want: policy, policyName: workloadPolicy,
			do: patchPod(tenantNS, tenantApp, false, map[string]any{"serviceAccountName": "admin"})},
		{name: "join the host network", want: policy, policyName: workloadPolicy,
			do: patchPod(tenantNS, tenantApp, false, map[string]any{"hostNetwork": true})},
		{name: "relabel the pods into another Service", want: policy, policyName: workloadPolicy, do: patchTemplate(tenantNS, tenantApp, false, map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"role": "frontend"}}})},
		{name: "bind a Deployment in kube-system", want: policy, policyName: workloadPolicy,
			do: patchPod("kube-system", systemApp, false, container(map[string]any{"env": []any{secretEnv("K", "sc-c1-secret")}}))},

		{name: "create a Deployment", want: rbac, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.AppsV1().Deployments(tenantNS).Create(ctx, deployment(tenantNS, "new"), metav1.CreateOptions{})
			return err
		}},
		{name: "delete a Deployment", want: rbac, do: func(ctx context.Context, id identity) error {
			return id.cs.AppsV1().Deployments(tenantNS).Delete(ctx, tenantApp, metav1.DeleteOptions{})
		}},
		{name: "list Deployments (restart-on-change)", want: allowed, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.AppsV1().Deployments(tenantNS).List(ctx, metav1.ListOptions{})
			return err
		}},
		{name: "watch Deployments", want: rbac, do: func(ctx context.Context, id identity) error {
			w, err := id.cs.AppsV1().Deployments(tenantNS).Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{name: "scale a Deployment", want: rbac, do: func(ctx context.Context, id identity) error {
			scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: tenantApp}, Spec: autoscalingv1.ScaleSpec{Replicas: 50}}
			_, err := id.cs.AppsV1().Deployments(tenantNS).UpdateScale(ctx, tenantApp, scale, metav1.UpdateOptions{})
			return err
		}},
		{name: "patch a Pod", want: rbac, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoreV1().Pods(tenantNS).Patch(ctx, "x", types.MergePatchType, []byte(`{"metadata":{"labels":{"a":"b"}}}`), metav1.PatchOptions{})
			return err
		}},
	}
}
