//go:build integration

package jobrun_integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// A target namespace deleted (Terminating, then gone) parks its connection
// without failing any run; re-created and woken, the connection renders
// again. Other connections are not held back meanwhile.
func TestDeletedNamespaceParksAndRecreatedOneRendersAgain(t *testing.T) {
	e := setup(t)
	e.ownJob()
	e.apply(e.secretChange("db1"))
	_, err := e.runner().Run(e.ctx)
	require.NoError(t, err)
	require.Equal(t, connection.PhaseSucceeded, e.get("db1").Status.Phase)

	require.NoError(t, e.client.CoreV1().Namespaces().Delete(e.ctx, e.target, metav1.DeleteOptions{}))
	require.NoError(t, e.store.MarkPending(e.ctx, "db1", "Drift", "Secret deleted with its namespace"))
	e.ownJob()
	sum, err := e.runner().Run(e.ctx)
	require.NoError(t, err, "a vanished namespace is no run failure")
	require.Len(t, sum.Parked, 1)
	assert.False(t, e.jobExists(), "the run deleted its Job")
	c := e.get("db1")
	assert.Equal(t, connection.PhasePending, c.Status.Phase)
	assert.Equal(t, connection.ReasonNamespaceNotFound, c.Status.Reason)
	assert.False(t, connection.Due(c, time.Now()), "parked until woken")

	// The namespace controller finishes the deletion; then it is re-created.
	err = wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := e.client.CoreV1().Namespaces().Get(ctx, e.target, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	require.NoError(t, err, "namespace %s never went away", e.target)
	_, err = e.client.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.target}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, e.store.Wake(e.ctx, "db1", "NamespaceCreated", "namespace exists again"))

	sum, err = e.runner().Run(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Rendered)
	c = e.get("db1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase)
	assert.Equal(t, connection.ReasonNamespaceNotFound, c.Status.LastFailure.Reason, "the parking stays in the history")
	_, err = e.client.CoreV1().Secrets(e.target).Get(e.ctx, "sc-db1-secret", metav1.GetOptions{})
	assert.NoError(t, err)
}
