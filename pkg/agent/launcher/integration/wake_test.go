//go:build integration

package launcher_integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	connrecord "github.com/sc-extension/sc-extension/pkg/kube/record"
)

// A connection sc-job parked on its missing namespace starts no Job; when
// the namespace is created the launcher wakes the record and starts sc-job
// within seconds, not after the ten-minute parking.
func TestNamespaceCreatedWakesParkedConnection(t *testing.T) {
	const target = "sc-wake-target"
	e := setup(t)
	e.startLauncher()

	parkedUntil := time.Now().Add(connection.ParkedDelay).UTC().Truncate(time.Second)
	cm, err := connrecord.New(e.ns, connection.Connection{
		Spec: connection.Spec{Name: "db1", Scope: target}, Generation: 1,
		Status: connection.Status{Phase: connection.PhasePending, Reason: connection.ReasonNamespaceNotFound,
			Message: "namespace " + target + " not found", Attempts: 1, RetryAfter: &parkedUntil},
	})
	require.NoError(t, err)
	_, err = e.client.CoreV1().ConfigMaps(e.ns).Create(e.ctx, cm, metav1.CreateOptions{})
	require.NoError(t, err)

	// Parked is not work: no Job comes (a short look; the unit tests pin
	// the decision exactly).
	err = wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := e.client.BatchV1().Jobs(e.ns).Get(ctx, launcher.DefaultJobName, metav1.GetOptions{})
		return err == nil, nil
	})
	require.ErrorIs(t, err, context.DeadlineExceeded, "no sc-job for a parked connection")

	created := time.Now()
	kubetest.Namespace(t, kubetest.Name(target))
	job := e.waitJob("started for the woken connection", func(*batchv1.Job) bool { return true })
	t.Logf("sc-job created %s after the namespace", time.Since(created))
	assert.Equal(t, "1", job.Annotations[launcher.AnnotationPending])
	assert.Less(t, time.Since(created), 10*time.Second, "woken within seconds")

	got, err := e.client.CoreV1().ConfigMaps(e.ns).Get(e.ctx, connection.ConfigMapName("db1"), metav1.GetOptions{})
	require.NoError(t, err)
	c, err := connrecord.Decode(got)
	require.NoError(t, err)
	assert.Equal(t, connection.PhasePending, c.Status.Phase)
	assert.Equal(t, launcher.ReasonNamespaceCreated, c.Status.Reason)
	assert.Nil(t, c.Status.RetryAfter, "due now")
	managers := map[string]bool{}
	for _, mf := range got.ManagedFields {
		managers[mf.Manager] = true
	}
	assert.True(t, managers[connection.FieldManager], "woken with field manager %s: %v", connection.FieldManager, managers)

	require.NoError(t, wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(e.eventsFor("ConfigMap", got.Name)) >= 1, nil
	}), "the wake's Event on the record")
	assert.Contains(t, e.eventsFor("ConfigMap", got.Name), "NamespaceCreated: Namespace "+target+" exists; woken to render again")
}
