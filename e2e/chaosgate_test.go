//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// The chaos tests' gate: a ResourceQuota `pods: "0"` in sc-system. While
// it exists no pod can be created there, so sc-job cannot run and every
// stored request stays unfinished (Pending) however fast the machine is:
// a fault injected while the gate is closed provably lands before the work
// is done. Pods that already run are not affected (the agent keeps
// running), but a replacement pod (a killed agent's, sc-job's) waits too.
const gateQuota = "e2e-chaos-gate"

type podGate struct {
	e      *env
	opened bool
}

// closePodGate creates the quota and waits until no sc-job pod of an
// earlier test is still running (such a pod would drain this test's work
// behind the gate). It opens the gate at cleanup if the test did not.
func (e *env) closePodGate(t *testing.T) *podGate {
	t.Helper()
	cs := e.cluster.Clientset
	ctx := context.Background()
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: gateQuota, Namespace: systemNS},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}}
	_, err := cs.CoreV1().ResourceQuotas(systemNS).Create(ctx, q, metav1.CreateOptions{})
	require.NoError(t, err)
	g := &podGate{e: e}
	t.Cleanup(func() {
		if !g.opened {
			g.open(t)
		}
	})
	// A pod of an earlier test's sc-job (a warm one lingers) would drain
	// this test's work behind the gate.
	e.awaitNoSCJobRunning(t)
	return g
}

// awaitJobHeld waits until the agent has launched sc-job for the held
// work: the Job exists and has no pod that could run it.
func (g *podGate) awaitJobHeld(t *testing.T) {
	t.Helper()
	cs := g.e.cluster.Clientset
	eventually(t, time.Minute, "sc-job launched and held at the gate", func(ctx context.Context) (bool, error) {
		if _, err := cs.BatchV1().Jobs(systemNS).Get(ctx, jobName, metav1.GetOptions{}); err != nil {
			return false, err
		}
		pods, err := cs.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + jobName})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				return false, fmt.Errorf("sc-job pod %s exists behind the gate", p.Name)
			}
		}
		return true, nil
	})
}

// open deletes the quota and makes sure a held sc-job gets its pod. The Job
// controller retries a refused pod create with a backoff growing to a
// minute and is not told that the quota went away, so the Job is nudged
// (an annotation: a metadata-only update makes the controller sync it
// within a second) until its pod exists.
func (g *podGate) open(t *testing.T) {
	t.Helper()
	g.opened = true
	cs := g.e.cluster.Clientset
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := cs.CoreV1().ResourceQuotas(systemNS).Delete(ctx, gateQuota, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("opening the gate: %v", err)
		return
	}
	var lastNudge time.Time
	err = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if _, err := cs.BatchV1().Jobs(systemNS).Get(ctx, jobName, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return true, nil // nothing held (or the work is done)
		}
		pods, err := cs.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + jobName})
		if err == nil && len(pods.Items) > 0 {
			return true, nil
		}
		if time.Since(lastNudge) > 2*time.Second {
			lastNudge = time.Now()
			patch := fmt.Sprintf(`{"metadata":{"annotations":{"e2e.sc-extension.io/gate-opened":%q}}}`, lastNudge.Format(time.RFC3339Nano))
			_, _ = cs.BatchV1().Jobs(systemNS).Patch(ctx, jobName, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("the gate is open but sc-job got no pod: %v", err)
	}
}

// publisher sends create requests straight to the stream with credentials
// sealed once to the agent's key, so it needs neither the agent nor the
// API server to be up; a publish is retried with the same request id (the
// stream stores it once).
type publisher struct {
	e   *env
	pub string
	ns  string
	// requests is connection name -> request id of everything sent.
	requests map[string]string
}

func (e *env) newPublisher(ctx context.Context, t *testing.T, ns string) *publisher {
	t.Helper()
	pub, err := e.cp.PublicKey(ctx)
	require.NoError(t, err)
	p := &publisher{e: e, pub: pub, ns: ns, requests: map[string]string{}}
	e.deleteAllAtCleanup(t, p.requests) // filled as requests go out; read at the end
	return p
}

// send creates storage-blob connections prefix<from>..prefix<to-1> and
// returns them (name -> request id).
func (p *publisher) send(ctx context.Context, t *testing.T, prefix string, from, to int) map[string]string {
	t.Helper()
	sent, err := p.trySend(ctx, prefix, from, to)
	require.NoError(t, err)
	return sent
}

// trySend is send without failing the test: for code that must go on
// whatever happens (RestartAPIServer's whileDown starts the API server
// again after it).
func (p *publisher) trySend(ctx context.Context, prefix string, from, to int) (map[string]string, error) {
	sent := map[string]string{}
	for i := from; i < to; i++ {
		name := uniq(fmt.Sprintf("%s%d", prefix, i))
		spec, creds, err := specFor(name, p.ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
		if err != nil {
			return sent, err
		}
		sealed, err := protocol.Seal(creds, p.pub)
		if err != nil {
			return sent, err
		}
		req := protocol.Request{Header: protocol.NewHeader(protocol.KindRequest), ID: controlplane.NewRequestID(),
			Cluster: clusterID, Op: protocol.OpCreate, SentAt: time.Now().UTC(), Connection: spec, Credentials: sealed}
		var last error
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, last = p.e.cp.Publish(ctx, req)
			return last == nil, nil
		})
		if err != nil {
			return sent, fmt.Errorf("publish %s: %w (last error: %w)", name, err, last)
		}
		p.requests[name], sent[name] = req.ID, req.ID
	}
	return sent, nil
}

// awaitStored waits until the control plane heard that the agent stored
// every one of the requests: a non-final status carrying the request id
// that is not a transient failure (Pending/Accepted from the intake, or
// the stored record's status re-published for a redelivered duplicate).
func awaitStored(t *testing.T, status *statusLog, requests map[string]string) {
	t.Helper()
	eventually(t, 3*time.Minute, fmt.Sprintf("the agent to store %d requests", len(requests)), func(context.Context) (bool, error) {
		stored := map[string]bool{}
		status.mu.Lock()
		for _, ev := range status.events {
			if !finalPhase(ev.Phase) && ev.Reason != connection.ReasonRetrying {
				stored[ev.RequestID] = true
			}
		}
		status.mu.Unlock()
		missing := 0
		for _, id := range requests {
			if !stored[id] {
				missing++
			}
		}
		if missing > 0 {
			return false, fmt.Errorf("%d of %d not stored yet", missing, len(requests))
		}
		return true, nil
	})
}
