//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

const (
	agentLease = "sc-agent"
	// leaseGate is the holder the test writes into the agents' Lease to
	// keep leadership vacant for as long as it needs.
	leaseGate = "e2e-chaos-lease-gate"
)

// TestLeaderHandoverDuringDeletes runs two agent replicas and kills the
// leader while a burst of deletes is in flight, in the worst order:
//
//  1. the gate holds sc-job back, so every delete is stored and none done;
//  2. the test takes the Lease (holder leaseGate, one hour); once the
//     leader logged that it lost it, the test kills it and waits until its
//     process is gone (its log ended): no agent leads;
//  3. the gate opens: sc-job removes every record while no agent leads;
//     the records stay terminating (the status finalizer) and the control
//     plane has heard no Deleted;
//  4. the test gives the Lease up: the other replica (or the killed one's
//     replacement) takes over and reports each delete Deleted exactly once.
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
	lease, err := cs.CoordinationV1().Leases(systemNS).Get(ctx, agentLease, metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, lease.Spec.HolderIdentity)
	leader := *lease.Spec.HolderIdentity
	_, err = cs.CoreV1().Pods(systemNS).Get(ctx, leader, metav1.GetOptions{})
	require.NoError(t, err, "the Lease holder is a running agent pod")
	// Kept, and printed if the test fails; its end says the pod is dead.
	leaderLog := e.followIntake(ctx, t, leader, func(string) bool { return false })

	gate := e.closePodGate(t)
	deletes := map[string]string{}
	for name := range creates {
		id, err := e.cp.Delete(ctx, name, true)
		require.NoError(t, err)
		deletes[name] = id
	}
	awaitStored(t, status, deletes)
	gate.awaitJobHeld(t)
	require.Equal(t, n, unfinished(status, deletes), "behind the gate no delete can have finished")

	e.holdLease(ctx, t)
	// Killed only once it knows it lost the Lease: client-go's release on
	// shutdown re-reads the Lease but trusts its stale belief that it
	// leads, and would overwrite the test's holder with an empty one.
	eventually(t, time.Minute, "the leader to see it lost the Lease", func(context.Context) (bool, error) {
		return leaderLog.saw("stopped leading"), nil
	})
	require.NoError(t, cs.CoreV1().Pods(systemNS).Delete(ctx, leader, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	// A force-deleted pod's process outlives its API object by seconds,
	// still leading until its renew deadline: the gate opens only once its
	// log has ended, or it could report the removals itself.
	leaderLog.awaitEnd(t)
	t.Logf("killed leader %s with %d of %d deletes stored and unfinished; no agent leads", leader, n, n)

	gate.open(t)
	eventually(t, 3*time.Minute, "sc-job to remove every record while no agent leads", func(ctx context.Context) (bool, error) {
		cms, err := cs.CoreV1().ConfigMaps(systemNS).List(ctx, metav1.ListOptions{LabelSelector: record.Selector})
		if err != nil {
			return false, err
		}
		terminating := 0
		for i := range cms.Items {
			c, err := record.Decode(&cms.Items[i])
			if _, ours := deletes[c.Spec.Name]; err == nil && ours && cms.Items[i].DeletionTimestamp != nil {
				terminating++
			}
		}
		if terminating < n {
			return false, fmt.Errorf("%d of %d records terminating", terminating, n)
		}
		return true, nil
	})
	held, err := cs.CoordinationV1().Leases(systemNS).Get(ctx, agentLease, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, leaseGate, *held.Spec.HolderIdentity, "still no agent leads")
	assert.Equal(t, n, unfinished(status, deletes), "with no leader nobody reports Deleted: the finalizer holds every record")

	e.releaseLease(ctx, t)
	status.awaitFinals(t, 5*time.Minute, connection.PhaseDeleted, deletes)
	eventually(t, time.Minute, "every record released and gone", func(ctx context.Context) (bool, error) {
		recs, err := e.recordsOf(ctx, deletes)
		return err == nil && len(recs) == 0, err
	})
	e.assertRenderedSecrets(t, ns, nil)
	lease, err = cs.CoordinationV1().Leases(systemNS).Get(ctx, agentLease, metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, lease.Spec.HolderIdentity)
	assert.NotEqual(t, leader, *lease.Spec.HolderIdentity, "another agent leads")
	t.Logf("new leader %s", *lease.Spec.HolderIdentity)
}

// holdLease writes leaseGate into the agents' Lease with a one-hour
// duration: client-go's elector honours the record's duration, so no
// replica acquires it until releaseLease. Given up at cleanup if the test
// ends before.
func (e *env) holdLease(ctx context.Context, t *testing.T) {
	t.Helper()
	leases := e.cluster.Clientset.CoordinationV1().Leases(systemNS)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := leases.Get(ctx, agentLease, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.NewMicroTime(time.Now())
		l.Spec = coordinationv1.LeaseSpec{HolderIdentity: new(leaseGate), LeaseDurationSeconds: new(int32(3600)),
			AcquireTime: &now, RenewTime: &now, LeaseTransitions: l.Spec.LeaseTransitions}
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
	require.NoError(t, err)
	t.Cleanup(func() { e.releaseLease(context.Background(), t) })
}

// releaseLease deletes the Lease if the test still holds it; the agents
// create it anew on their next try.
func (e *env) releaseLease(ctx context.Context, t *testing.T) {
	leases := e.cluster.Clientset.CoordinationV1().Leases(systemNS)
	l, err := leases.Get(ctx, agentLease, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		t.Errorf("releasing the Lease: %v", err)
		return
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != leaseGate {
		return
	}
	err = leases.Delete(ctx, agentLease, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &l.UID, ResourceVersion: &l.ResourceVersion}})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("releasing the Lease: %v", err)
	}
}
