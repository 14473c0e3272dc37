//go:build e2e

package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

const jobName = "sc-job"

// TestUnmanagedSecretIsNeverOverwritten covers the failure path end to end:
// an existing Secret sc-extension does not manage is left untouched, the
// connection fails with that reason, sc-job stays with a log naming the
// cause, and the next successful run replaces it and then removes itself.
func TestUnmanagedSecretIsNeverOverwritten(t *testing.T) {
	e := product(t)
	ns := e.targetNamespace(t)
	ctx := context.Background()
	cs := e.cluster.Clientset
	spec, creds := buildSpec(t, uniq("owned"), ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: connection.SecretName(uniq("owned")), Namespace: ns},
		StringData: map[string]string{"mine": "do-not-touch"}}
	_, err := cs.CoreV1().Secrets(ns).Create(ctx, foreign, metav1.CreateOptions{})
	require.NoError(t, err)

	ev := e.apply(t, protocol.OpCreate, spec, creds)
	require.Equal(t, connection.PhaseFailed, ev.Phase)
	assert.Contains(t, ev.Message, connection.SecretName(uniq("owned")))
	assert.Contains(t, strings.ToLower(ev.Message), "not managed by sc-extension")

	sec, err := getSecret(ctx, cs, ns, connection.SecretName(uniq("owned")))
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"mine": []byte("do-not-touch")}, sec.Data, "the foreign Secret is untouched")
	assert.Empty(t, sec.Labels["app.kubernetes.io/managed-by"])

	// the failed Job stays, and its log says which connection failed and why
	failed, err := cs.BatchV1().Jobs(systemNS).Get(ctx, jobName, metav1.GetOptions{})
	require.NoError(t, err, "a failed sc-job stays for kubectl describe / logs")
	eventually(t, time.Minute, "sc-job to be marked failed", func(ctx context.Context) (bool, error) {
		j, err := cs.BatchV1().Jobs(systemNS).Get(ctx, jobName, metav1.GetOptions{})
		return err == nil && jobFailed(j), err
	})
	logs, err := jobLogs(ctx, cs, systemNS, jobName)
	require.NoError(t, err)
	assert.Contains(t, logs, strconv.Quote(uniq("owned")))
	assert.Contains(t, logs, connection.SecretName(uniq("owned")))
	assert.Contains(t, strings.ToLower(logs), "not managed by sc-extension")

	// the user removes the foreign object and re-sends: a fresh sc-job replaces the failed one
	require.NoError(t, cs.CoreV1().Secrets(ns).Delete(ctx, foreign.Name, metav1.DeleteOptions{}))
	ev = e.apply(t, protocol.OpUpdate, spec, creds)
	require.Equal(t, connection.PhaseSucceeded, ev.Phase, ev.Message)
	eventually(t, time.Minute, "the successful sc-job to delete itself", func(ctx context.Context) (bool, error) {
		j, err := cs.BatchV1().Jobs(systemNS).Get(ctx, jobName, metav1.GetOptions{})
		if err != nil {
			return jobGone(ctx, cs, systemNS, jobName)
		}
		// a Job of the same name that is not the failed one is the replacement, still finishing
		return j.UID != failed.UID && j.DeletionTimestamp != nil, nil
	})
}

// TestSuccessfulJobRemovesItself checks the seed's promise: when sc-job
// succeeded it is gone from sc-system.
func TestSuccessfulJobRemovesItself(t *testing.T) {
	e := product(t)
	ns := e.targetNamespace(t)
	spec, creds := buildSpec(t, uniq("gone"), ns, catalog.TargetStorageQueue, catalog.AuthSecret,
		"/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct/queueServices/default")
	require.Equal(t, connection.PhaseSucceeded, e.apply(t, protocol.OpCreate, spec, creds).Phase)
	eventually(t, time.Minute, "sc-job to be gone", func(ctx context.Context) (bool, error) {
		return jobGone(ctx, e.cluster.Clientset, systemNS, jobName)
	})
}
