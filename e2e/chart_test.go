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
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// TestHelmTestPasses runs the chart's own `helm test`: the agent answers.
func TestHelmTestPasses(t *testing.T) {
	e := product(t)
	out := runHelm(t, e.cluster.Kubeconfig, "test", release, "-n", systemNS, "--timeout", "2m")
	assert.Contains(t, out, "Succeeded")
}

// TestHelmUpgradeRerendersEverything: the post-upgrade hook runs sc-job over
// every stored connection (the seed: "during the extension installation or
// update, sc-job creates the Kubernetes resources"), and a connection whose
// rendering did not change costs no write: neither its record nor what it
// rendered is rewritten (the repair of a changed rendering by --render-all
// is jobrun's TestRunRenderAllRecordsWhatItChanged).
func TestHelmUpgradeRerendersEverything(t *testing.T) {
	e := product(t)
	ctx := context.Background()
	cs := e.cluster.Clientset
	ns := e.targetNamespace(t)
	spec, creds := buildSpec(t, uniq("upgraded"), ns, catalog.TargetStorageBlob, catalog.AuthWorkloadIdentity, blobID)
	// Bound to a workload: an upgrade that changes no rendering restarts nothing.
	app := &workload{t: t, e: e, ns: ns, names: map[string]string{spec.Name: ""}}
	app.create(ctx)
	spec.Binding = &connection.Binding{Workloads: []connection.Workload{{Kind: connection.WorkloadDeployment, Name: boundApp}}}
	require.Equal(t, connection.PhaseSucceeded, e.apply(t, protocol.OpCreate, spec, creds).Phase)
	rollouts, generation := app.awaitSettled(), app.get().Generation
	recordRV := func() string {
		cm, err := cs.CoreV1().ConfigMaps(systemNS).Get(ctx, connection.ConfigMapName(spec.ID()), metav1.GetOptions{})
		require.NoError(t, err)
		return cm.ResourceVersion
	}
	secretRV := func() string {
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, connection.SecretName(spec.ID()), metav1.GetOptions{})
		require.NoError(t, err)
		return s.ResourceVersion
	}
	beforeRecord, beforeSecret := recordRV(), secretRV()

	// Every Job change from now on: the hook's Job must be seen to finish
	// without failing (complete, or deleted by its own sc-job on success).
	// A hook Job left from before (before-hook-creation deletes it) is not
	// this upgrade's.
	jobs, err := cs.BatchV1().Jobs(systemNS).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	earlier := map[types.UID]bool{}
	for _, j := range jobs.Items {
		earlier[j.UID] = true
	}
	w, err := cs.BatchV1().Jobs(systemNS).Watch(ctx, metav1.ListOptions{ResourceVersion: jobs.ResourceVersion})
	require.NoError(t, err)
	defer w.Stop()

	runHelm(t, e.cluster.Kubeconfig, e.helmArgs("upgrade", "--set", "logLevel=info")...)

	// helm waited for the hook, so its Job's events are already queued.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err = watchtools.UntilWithoutRetry(wctx, w, func(ev watch.Event) (bool, error) {
		j, isJob := ev.Object.(*batchv1.Job)
		if !isJob || earlier[j.UID] || !strings.HasPrefix(j.Name, "sc-job-render") {
			return false, nil
		}
		if jobFailed(j) {
			return false, fmt.Errorf("the render hook Job %s failed", j.Name)
		}
		// sc-job deletes its own Job once every connection succeeded,
		// often before the Job controller counts the pod.
		return j.Status.Succeeded > 0 || ev.Type == watch.Deleted, nil
	})
	require.NoError(t, err, "the upgrade's render hook Job seen to finish unfailed")
	var after protocol.ConnectionView
	e.query(t, protocol.VerbShow, uniq("upgraded"), &after)
	assert.Equal(t, connection.PhaseSucceeded, after.Status.Phase)
	assert.Equal(t, beforeRecord, recordRV(), "the hook rewrote the record of an unchanged connection")
	assert.Equal(t, beforeSecret, secretRV(), "the hook rewrote the rendered Secret of an unchanged connection")
	assert.Equal(t, generation, app.get().Generation, "the hook changed the bound Deployment")
	assert.Equal(t, rollouts, app.awaitSettled(), "the upgrade rolled the bound Deployment")
	all, err := cs.BatchV1().Jobs(systemNS).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, j := range all.Items {
		assert.False(t, strings.HasPrefix(j.Name, "sc-job-render") && j.DeletionTimestamp == nil && !jobFailed(&j),
			"the successful hook Job %s is deleted by its hook-delete-policy", j.Name)
	}
}

// TestJobServiceAccountIsLeastPrivilege asks the API server itself
// (SubjectAccessReview) what sc-job's and the agent's identities may do.
func TestJobServiceAccountIsLeastPrivilege(t *testing.T) {
	e := product(t)
	ctx := context.Background()
	cases := []struct {
		user      string
		verb      string
		resource  string
		namespace string
		allowed   bool
	}{
		{"system:serviceaccount:sc-system:sc-job", "list", "secrets", "kube-system", false},
		{"system:serviceaccount:sc-system:sc-job", "create", "secrets", "team-x", true},
		{"system:serviceaccount:sc-system:sc-job", "create", "serviceaccounts", "team-x", true},
		{"system:serviceaccount:sc-system:sc-job", "create", "pods", "team-x", false},
		{"system:serviceaccount:sc-system:sc-job", "create", "configmaps", "team-x", false},
		{"system:serviceaccount:sc-system:sc-job", "create", "rolebindings", "team-x", false},
		{"system:serviceaccount:sc-system:sc-agent", "create", "secrets", "team-x", false},
		{"system:serviceaccount:sc-system:sc-agent", "update", "secrets", "team-x", false},
		{"system:serviceaccount:sc-system:sc-agent", "create", "jobs", systemNS, true},
	}
	for _, c := range cases {
		sar := &authv1.SubjectAccessReview{Spec: authv1.SubjectAccessReviewSpec{User: c.user,
			ResourceAttributes: &authv1.ResourceAttributes{Namespace: c.namespace, Verb: c.verb, Resource: c.resource,
				Group: map[string]string{"jobs": "batch", "rolebindings": "rbac.authorization.k8s.io"}[c.resource]}}}
		got, err := e.cluster.Clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		require.NoError(t, err)
		assert.Equal(t, c.allowed, got.Status.Allowed, "%s %s %s in %s (%s)", c.user, c.verb, c.resource, c.namespace, got.Status.Reason)
	}
}

// TestSystemNamespaceRunsRestricted: sc-system enforces Pod Security
// "restricted" (set up before install) and the agent runs there.
func TestSystemNamespaceRunsRestricted(t *testing.T) {
	e := product(t)
	ctx := context.Background()
	ns, err := e.cluster.Clientset.CoreV1().Namespaces().Get(ctx, systemNS, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "restricted", ns.Labels["pod-security.kubernetes.io/enforce"])
	d, err := e.cluster.Clientset.AppsV1().Deployments(systemNS).Get(ctx, "sc-agent", metav1.GetOptions{})
	require.NoError(t, err)
	assert.True(t, deploymentReady(d), "agent Deployment ready under restricted: %+v", d.Status)
	eventually(t, time.Minute, "a heartbeat from the agent", func(ctx context.Context) (bool, error) {
		hb, err := e.cp.LatestHeartbeat(ctx)
		return err == nil && hb.Ready, err
	})
}

// TestAdmissionPoliciesInPlace: the suite runs against a release whose
// ValidatingAdmissionPolicies (chart/templates/admission-policies.yaml) are
// installed, bound with Deny and enforced, so every other e2e test proves the
// product works with them on.
func TestAdmissionPoliciesInPlace(t *testing.T) {
	e := product(t)
	ctx := context.Background()
	admission := e.cluster.Clientset.AdmissionregistrationV1()
	for _, name := range []string{"sc-extension-job", "sc-extension-agent", "sc-extension-agent-jobs", "sc-extension-owner-label",
		"sc-extension-job-workloads", "sc-extension-job-daemonsets", "sc-extension-job-cronjobs"} {
		p, err := admission.ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err, "policy %s", name)
		assert.Equal(t, release, p.Annotations["meta.helm.sh/release-name"], "%s belongs to this release", name)
		assert.Equal(t, systemNS, p.Annotations["meta.helm.sh/release-namespace"], name)
		require.NotNil(t, p.Spec.FailurePolicy, name)
		assert.Equal(t, admissionregistrationv1.Fail, *p.Spec.FailurePolicy, name)
		b, err := admission.ValidatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err, "binding %s", name)
		assert.Equal(t, name, b.Spec.PolicyName)
		assert.Equal(t, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}, b.Spec.ValidationActions, name)
	}

	// Enforced, not just stored: as sc-job, which RBAC lets create Secrets in
	// a tenant namespace, a dry-run create of a Secret that is not the
	// extension's is refused by the policy (dry run: admission runs, nothing
	// is stored).
	ns := e.targetNamespace(t)
	cfg := rest.CopyConfig(e.cluster.RESTConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + systemNS + ":sc-job"}
	asJob, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	planted := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "planted", Namespace: ns}, Type: corev1.SecretTypeOpaque}
	_, err = asJob.CoreV1().Secrets(ns).Create(ctx, planted, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	require.Error(t, err)
	assert.True(t, apierrors.IsInvalid(err) || apierrors.IsForbidden(err), "%v", err)
	assert.Contains(t, err.Error(), "ValidatingAdmissionPolicy 'sc-extension-job'")
}
