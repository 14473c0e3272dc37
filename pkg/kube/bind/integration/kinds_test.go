//go:build integration

package bind_integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
)

const podTemplate = `
      metadata:
        labels: {app: x}
      spec:
        restartPolicy: %s
        containers:
        - {name: app, image: example.com/app:1}`

// Every kind is bound through its own pod template path, and unbound to
// the byte.
func TestEveryKindIsBound(t *testing.T) {
	e := setup(t)
	manifests := map[connection.WorkloadKind]string{
		connection.WorkloadStatefulSet: `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: x}
spec:
  replicas: 0
  serviceName: x
  selector: {matchLabels: {app: x}}
  template:` + fmt.Sprintf(podTemplate, "Always"),
		connection.WorkloadDaemonSet: `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: x}
spec:
  selector: {matchLabels: {app: x}}
  template:` + fmt.Sprintf(podTemplate, "Always"),
		connection.WorkloadCronJob: `apiVersion: batch/v1
kind: CronJob
metadata: {name: x}
spec:
  schedule: "@daily"
  suspend: true
  jobTemplate:
    spec:
      template:` + indent(fmt.Sprintf(podTemplate, "Never")),
	}
	for _, kind := range []connection.WorkloadKind{connection.WorkloadStatefulSet, connection.WorkloadDaemonSet, connection.WorkloadCronJob} {
		t.Run(string(kind), func(t *testing.T) {
			e.t = t
			e.userApply(kind, "x", manifests[kind])
			before := e.template(kind)
			p := e.path(kind, "x")

			res, reqs, err := e.reconcile(e.ref(kind, "x"), envMember("blob", "K"))
			require.NoError(t, err)
			assert.Equal(t, []string{"GET " + p, "PATCH " + p}, reqs)
			assert.Equal(t, []string{"app"}, res.Containers)
			bound := e.template(kind)
			assert.Equal(t, []corev1.EnvVar{{Name: "K", ValueFrom: secretRef("sc-blob-secret", "K")}}, bound.Spec.Containers[0].Env)
			assert.NotEmpty(t, bound.Annotations[bind.AnnotationRestartToken])

			_, reqs, err = e.reconcile(e.ref(kind, "x"), envMember("blob", "K"))
			require.NoError(t, err)
			assert.Equal(t, []string{"GET " + p}, reqs)

			_, _, err = e.reconcile(e.ref(kind, "x"))
			require.NoError(t, err)
			assert.Equal(t, mustJSON(t, before), mustJSON(t, e.template(kind)))
		})
	}
}

// indent shifts the pod template under a CronJob's jobTemplate.spec.
func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }

func (e *env) template(kind connection.WorkloadKind) corev1.PodTemplateSpec {
	e.t.Helper()
	opts := metav1.GetOptions{}
	switch kind {
	case connection.WorkloadStatefulSet:
		o, err := e.admin.AppsV1().StatefulSets(e.ns).Get(e.ctx, "x", opts)
		require.NoError(e.t, err)
		return o.Spec.Template
	case connection.WorkloadDaemonSet:
		o, err := e.admin.AppsV1().DaemonSets(e.ns).Get(e.ctx, "x", opts)
		require.NoError(e.t, err)
		return o.Spec.Template
	case connection.WorkloadCronJob:
		o, err := e.admin.BatchV1().CronJobs(e.ns).Get(e.ctx, "x", opts)
		require.NoError(e.t, err)
		return o.Spec.JobTemplate.Spec.Template
	}
	e.t.Fatalf("no template for %s", kind)
	return corev1.PodTemplateSpec{}
}
