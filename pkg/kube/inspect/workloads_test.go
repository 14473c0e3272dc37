package inspect

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/bind"
)

func app(containers ...string) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}}
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app"}}
	d.Spec.Template.Labels = map[string]string{"app": "app"}
	for _, c := range containers {
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: c, Image: "example.com/" + c})
	}
	return d
}

// What sc-job's binder applies is what validate accepts; a workload that
// lost it, or is missing, fails the Workload check with the reason.
func TestValidateBoundWorkload(t *testing.T) {
	ctx := context.Background()
	c, creds, objs := rendered(t)
	c.Spec.Binding = &connection.Binding{Workloads: []connection.Workload{{Kind: connection.WorkloadDeployment, Name: "app", Containers: []string{"web"}}}}
	client := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, objs.Secret, objs.ServiceAccount, app("web", "sidecar"))

	r := Validate(ctx, client, nil, c, creds)
	assert.Equal(t, Failure, results(r)[CheckWorkload], "not bound yet")
	assert.Contains(t, description(r, CheckWorkload), "runs as ServiceAccount \"\", not sc-account-"+clientID)
	assert.Contains(t, description(r, CheckWorkload), "container web lacks AZURE_REDIS_HOST, AZURE_REDIS_PASSWORD from Secret sc-db1-secret")

	ref := bind.Ref{Namespace: ns, Kind: connection.WorkloadDeployment, Name: "app"}
	m, ok := bind.MemberOf(c.Spec, ref, "1")
	require.True(t, ok)
	_, err := bind.NewBinder(client, 0, func() time.Time { return time.Unix(0, 0) }).Reconcile(ctx, ref, []bind.Member{m})
	require.NoError(t, err)
	r = Validate(ctx, client, nil, c, creds)
	assert.True(t, r.Valid, "%+v", r.Checks)
	assert.Equal(t, "Deployment team-a/app consumes Secret sc-db1-secret (env mode)", description(r, CheckWorkload))

	c.Spec.Binding.Workloads[0].Name = "gone"
	r = Validate(ctx, client, nil, c, creds)
	assert.Equal(t, "Deployment team-a/gone: not found", description(r, CheckWorkload))
	noCredential(t, r)
}
