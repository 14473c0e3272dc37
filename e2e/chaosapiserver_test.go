//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// TestAPIServerRestartedDuringBurst restarts kube-apiserver in the middle
// of a burst of creates. The gate holds sc-job back, so the first half is
// stored and unfinished when the API goes away; the second half is
// published while the API is down, so the agent provably tries to store it
// then: the control plane hears Pending/Retrying for it before the API
// comes back. That holds by design, not by luck: the intake cuts an
// attempt at 4 s (intake.DefaultAttemptTimeout), well inside the leader's
// 10 s renew deadline, after which this agent would stop taking requests
// until the API is back. After the restart every request is stored, rendered once,
// and has one final status. The agent's fate (same process, a container
// restart after losing the Lease, a new leader) is logged, not asserted:
// any of them is correct as long as the work converges.
func TestAPIServerRestartedDuringBurst(t *testing.T) {
	e := product(t)
	if err := e.cluster.CanRestartAPIServer(); err != nil {
		t.Skipf("this test restarts the local test bed's kube-apiserver: %v", err)
	}
	status := e.followStatus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ns := e.targetNamespace(t)
	pub := e.newPublisher(ctx, t, ns)
	gate := e.closePodGate(t)

	const half = 20
	first := pub.send(ctx, t, "apirs", 0, half)
	awaitStored(t, status, first)
	gate.awaitJobHeld(t)
	require.Equal(t, half, unfinished(status, first), "behind the gate no request can have finished")
	before := e.agentState(ctx, t)

	down, err := e.cluster.RestartAPIServer(ctx, func(ctx context.Context) error {
		// Nothing here may fail the test (FailNow would skip the start).
		second, err := pub.trySend(ctx, "apirs", half, 2*half)
		if err != nil {
			return err
		}
		return awaitRetrying(ctx, status, second)
	})
	require.NoError(t, err)
	t.Logf("kube-apiserver was down for %s; the agent retried the requests sent meanwhile", down.Round(time.Millisecond))

	awaitStored(t, status, pub.requests)
	gate.awaitJobHeld(t)
	gate.open(t)
	status.awaitFinals(t, 5*time.Minute, connection.PhaseSucceeded, pub.requests)
	e.awaitConverged(t, time.Minute, pub.requests)
	e.assertRenderedSecrets(t, ns, pub.requests)

	after := e.agentState(ctx, t)
	t.Logf("agent before the restart: %s", before)
	t.Logf("agent after the restart:  %s", after)
}

// awaitRetrying waits (at most 20 s: the API is down meanwhile) until the control plane heard
// Pending/Retrying for one of the requests: the agent tried to store it and
// failed transiently.
func awaitRetrying(ctx context.Context, status *statusLog, requests map[string]string) error {
	ids := map[string]bool{}
	for _, id := range requests {
		ids[id] = true
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		status.mu.Lock()
		for _, ev := range status.events {
			if ids[ev.RequestID] && ev.Reason == connection.ReasonRetrying {
				status.mu.Unlock()
				return nil
			}
		}
		status.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("the agent reported no transient failure for the %d requests sent while the API was down: %w", len(requests), ctx.Err())
		case <-tick.C:
		}
	}
}

// agentState describes the agent pods and the Lease, for the log.
func (e *env) agentState(ctx context.Context, t *testing.T) string {
	t.Helper()
	cs := e.cluster.Clientset
	var s string
	eventually(t, 2*time.Minute, "a Ready agent and a Lease holder", func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=agent"})
		if err != nil {
			return false, err
		}
		lease, err := cs.CoordinationV1().Leases(systemNS).Get(ctx, agentLease, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return false, fmt.Errorf("no Lease holder")
		}
		s = fmt.Sprintf("lease holder %s, transitions %d;", *lease.Spec.HolderIdentity, derefInt32(lease.Spec.LeaseTransitions))
		ready := false
		for _, p := range pods.Items {
			restarts := int32(0)
			for _, c := range p.Status.ContainerStatuses {
				restarts += c.RestartCount
			}
			podReady := false
			for _, c := range p.Status.Conditions {
				podReady = podReady || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
			}
			ready = ready || podReady
			s += fmt.Sprintf(" pod %s ready=%t restarts=%d", p.Name, podReady, restarts)
		}
		if !ready {
			return false, fmt.Errorf("no agent pod Ready: %s", s)
		}
		return true, nil
	})
	return s
}

func derefInt32(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}
