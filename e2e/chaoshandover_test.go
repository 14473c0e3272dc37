//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// TestLeaderHandoverDuringDeletes runs two agent replicas and kills the
// leader right after a burst of deletes was sent, before the control plane
// heard them all: the other replica takes over and every delete ends
// Deleted exactly once.
func TestLeaderHandoverDuringDeletes(t *testing.T) {
	e := product(t)
	status := e.followStatus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cs := e.cluster.Clientset
	ns := e.targetNamespace(t)

	const n = 20
	creates := e.createBlobs(ctx, t, "handover", ns, n)
	status.awaitFinals(t, 5*time.Minute, connection.PhaseSucceeded, creates)

	t.Cleanup(func() { runHelm(t, e.cluster.Kubeconfig, e.helmArgs("upgrade", "--set", "replicaCount=1")...) })
	runHelm(t, e.cluster.Kubeconfig, e.helmArgs("upgrade", "--set", "replicaCount=2")...)
	lease, err := cs.CoordinationV1().Leases(systemNS).Get(ctx, "sc-agent", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, lease.Spec.HolderIdentity)
	leader := *lease.Spec.HolderIdentity
	_, err = cs.CoreV1().Pods(systemNS).Get(ctx, leader, metav1.GetOptions{})
	require.NoError(t, err, "the Lease holder is a running agent pod")
	e.keepLogOnFailure(t, leader)

	sentAt := time.Now()
	deletes := map[string]string{}
	for name := range creates {
		id, err := e.cp.Delete(ctx, name, true)
		require.NoError(t, err)
		deletes[name] = id
	}
	awaitAccepted(t, status, deletes)
	// The old leader launched sc-job for the deletes: it removes records
	// while leadership changes hands.
	eventually(t, time.Minute, "sc-job running the deletes", func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + jobName})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.CreationTimestamp.Time.After(sentAt.Add(-time.Second)) {
				return true, nil
			}
		}
		return false, nil
	})
	left := unfinished(status, deletes)
	require.Positive(t, left, "deletes are in flight when the leader dies")
	require.NoError(t, cs.CoreV1().Pods(systemNS).Delete(ctx, leader, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	t.Logf("killed leader %s with %d of %d deletes unfinished", leader, left, n)

	status.awaitFinals(t, 5*time.Minute, connection.PhaseDeleted, deletes)
	recs, err := e.recordsOf(ctx, deletes)
	require.NoError(t, err)
	assert.Empty(t, recs, "every record removed")
	e.assertRenderedSecrets(t, ns, nil)
	eventually(t, 2*time.Minute, "a new leader", func(ctx context.Context) (bool, error) {
		l, err := cs.CoordinationV1().Leases(systemNS).Get(ctx, "sc-agent", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != leader && *l.Spec.HolderIdentity != "", nil
	})
}
