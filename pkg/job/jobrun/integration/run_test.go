//go:build integration

package jobrun_integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/job/jobrun"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/inspect"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// ownJob is a Job standing in for the one sc-job runs in; suspended, so no
// pod is ever created for it.
func (e *env) ownJob() {
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.sys, Name: "sc-job"},
		Spec: batchv1.JobSpec{
			Suspend: ptr.To(true),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "sc-job", Image: "localhost/sc-extension/job:dev"}},
			}},
		},
	}
	_, err := e.client.BatchV1().Jobs(e.sys).Create(e.ctx, job, metav1.CreateOptions{})
	require.NoError(e.t, err)
}

func (e *env) jobExists() bool {
	j, err := e.client.BatchV1().Jobs(e.sys).Get(e.ctx, "sc-job", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	require.NoError(e.t, err)
	return j.DeletionTimestamp == nil
}

func TestRunRendersIntoRealNamespace(t *testing.T) {
	e := setup(t)
	e.ownJob()
	db := e.secretChange("db1")
	e.apply(db)
	e.apply(e.wiChange("kv1"))

	sum, err := e.runner().Run(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, sum.Rendered)
	assert.Zero(t, sum.Arrived)
	assert.False(t, e.jobExists(), "every connection succeeded: the Job deleted itself")

	sec, err := e.client.CoreV1().Secrets(e.target).Get(e.ctx, "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, db.Credentials["AZURE_REDIS_CONNECTIONSTRING"], string(sec.Data["AZURE_REDIS_CONNECTIONSTRING"]))
	sa, err := e.client.CoreV1().ServiceAccounts(e.target).Get(e.ctx, connection.ServiceAccountName(clientID), metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, clientID, sa.Annotations[render.AnnotationWIClientID])

	for _, name := range []string{"db1", "kv1"} {
		c := e.get(name)
		assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase, name)
		assert.Equal(t, c.Generation, c.Status.ObservedGeneration)
		creds, err := e.store.Credentials(e.ctx, c)
		require.NoError(t, err)
		res := inspect.Validate(e.ctx, e.client, e.dynamic, c, creds)
		assert.True(t, res.Valid, "%s: %+v", name, res.Checks)
	}
	evs, err := e.client.EventsV1().Events(e.sys).List(e.ctx, metav1.ListOptions{})
	require.NoError(t, err)
	reasons := map[string]int{}
	for _, ev := range evs.Items {
		if ev.ReportingController == jobrun.ReportingController { // the job controller reports on the Job too
			assert.Equal(t, "Job", ev.Regarding.Kind, "the run's summary is on its Job")
			assert.Equal(t, "sc-job: 2 connections rendered, 0 deleted, 0 failed", ev.Note)
			reasons[ev.Reason]++
		}
	}
	assert.Equal(t, map[string]int{jobrun.ReasonRunCompleted: 1}, reasons, "one Event for the run, none per successful connection")
}

func TestRunRefusesForeignSecretOnRealAPI(t *testing.T) {
	e := setup(t)
	e.ownJob()
	theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.target, Name: "sc-db1-secret"}, StringData: map[string]string{"theirs": "x"}}
	_, err := e.client.CoreV1().Secrets(e.target).Create(e.ctx, theirs, metav1.CreateOptions{})
	require.NoError(t, err)
	e.apply(e.secretChange("db1"))

	sum, err := e.runner().Run(e.ctx)
	require.ErrorIs(t, err, jobrun.ErrFailed)
	require.Len(t, sum.Failures, 1)
	assert.Equal(t, jobrun.ReasonSecretIsOwned, sum.Failures[0].Reason)
	assert.Contains(t, e.out.String(), `connection "db1" failed at step apply-secret: Secret `+e.target+`/sc-db1-secret exists and is not managed by sc-extension (ErrSecretIsOwned)`)
	assert.True(t, e.jobExists(), "a failed run keeps its Job")
	got, err := e.client.CoreV1().Secrets(e.target).Get(e.ctx, "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"theirs": []byte("x")}, got.Data)
	assert.Equal(t, connection.PhaseFailed, e.get("db1").Status.Phase)
}

func TestRunDeletesSharedServiceAccountWithLastUser(t *testing.T) {
	e := setup(t)
	e.apply(e.wiChange("kv1"))
	e.apply(e.wiChange("kv2"))
	_, err := e.runner().Run(e.ctx)
	require.NoError(t, err)
	saName := connection.ServiceAccountName(clientID)
	saExists := func() bool {
		_, err := e.client.CoreV1().ServiceAccounts(e.target).Get(e.ctx, saName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false
		}
		require.NoError(t, err)
		return true
	}

	e.apply(connection.Change{RequestID: e.requestID(), Spec: e.wiChange("kv1").Spec, Delete: true, DeleteResources: true})
	sum, err := e.runner().Run(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Deleted)
	assert.True(t, saExists(), "kv2 still uses it")

	e.apply(connection.Change{RequestID: e.requestID(), Spec: e.wiChange("kv2").Spec, Delete: true, DeleteResources: true})
	_, err = e.runner().Run(e.ctx)
	require.NoError(t, err)
	assert.False(t, saExists(), "removed with its last user")
	list, err := e.store.List(e.ctx)
	require.NoError(t, err)
	assert.Empty(t, list)
}

// Drift: the rendered Secret is deleted by hand; the agent's drift watcher
// marks the connection Pending; the next run puts it back.
func TestRunRepairsDrift(t *testing.T) {
	e := setup(t)
	e.apply(e.secretChange("db1"))
	_, err := e.runner().Run(e.ctx)
	require.NoError(t, err)
	require.NoError(t, e.client.CoreV1().Secrets(e.target).Delete(e.ctx, "sc-db1-secret", metav1.DeleteOptions{}))
	require.NoError(t, e.store.MarkPending(e.ctx, "db1", "Drift", "Secret was deleted"))
	assert.Equal(t, connection.PhasePending, e.get("db1").Status.Phase)

	sum, err := e.runner().Run(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Writes)
	sec, err := e.client.CoreV1().Secrets(e.target).Get(e.ctx, "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	drifted, _ := inspect.DriftOf(sec, sec.Data)
	assert.False(t, drifted)
	assert.Equal(t, connection.PhaseSucceeded, e.get("db1").Status.Phase)
}

func TestRunKeyvaultCSI(t *testing.T) {
	e := setup(t)
	ch := connection.Change{RequestID: e.requestID(), Spec: connection.Spec{
		Name: "kvcsi", Scope: e.target,
		TargetService: connection.TargetService{Type: "keyvault", ID: "/subscriptions/s/kv"},
		AuthInfo:      connection.AuthInfo{AuthType: "keyvaultCsi", ClientID: clientID},
		SecretStore:   &connection.SecretStore{KeyVaultName: "kv", Objects: []string{"db-password"}},
	}}
	e.apply(ch)
	if !e.spcCRDInstalled() {
		sum, err := e.runner().Run(e.ctx)
		require.ErrorIs(t, err, jobrun.ErrFailed)
		require.Len(t, sum.Failures, 1)
		assert.Equal(t, jobrun.ReasonCSIDriverMissing, sum.Failures[0].Reason)
		assert.Contains(t, e.get("kvcsi").Status.Message,
			"the Secret Store CSI driver is not installed: CRD secretproviderclasses.secrets-store.csi.x-k8s.io not found")
		e.installSPCCRD()
		e.apply(connection.Change{RequestID: e.requestID(), Spec: ch.Spec})
	}
	// The CRD's API takes a moment to be served after it is Established.
	err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		// A repeated failure no longer fails the run: look at the phase.
		if _, err := e.runner().Run(ctx); err != nil && !errors.Is(err, jobrun.ErrFailed) {
			return false, err
		}
		if e.get("kvcsi").Status.Phase == connection.PhaseSucceeded {
			return true, nil
		}
		require.NoError(t, e.store.Wake(ctx, "kvcsi", "Retry", "CRD not served yet"))
		return false, nil
	})
	require.NoError(t, err, e.out.String())
	u, err := e.dynamic.Resource(apply.SPCResource).Namespace(e.target).Get(e.ctx, "sc-kvcsi-secretproviderclass", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "kv", u.Object["spec"].(map[string]any)["parameters"].(map[string]any)["keyvaultName"])
}
