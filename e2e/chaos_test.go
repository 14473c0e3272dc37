//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Chaos on the real cluster (issue 7, item 7). Every trigger is a state the
// test observed, never a delay; every test ends with the same accounting:
// no request lost, none applied twice, one rendered object per connection,
// and exactly one final status per request heard by the control plane
// (one known gap: see the end of TestNamespaceDeletedAndRecreated).

// TestNamespaceDeletedAndRecreated is the new user's run: a connection
// whose namespace is deleted waits (Pending/NamespaceNotFound) instead of
// failing, other tenants' sc-job runs keep succeeding and removing their
// Job, and re-creating the namespace brings the connection back by itself.
func TestNamespaceDeletedAndRecreated(t *testing.T) {
	e := product(t)
	status := e.followStatus(t)
	ctx := context.Background()
	cs := e.cluster.Clientset
	nsX := e.targetNamespace(t)
	other := e.targetNamespace(t)
	xObj, err := cs.CoreV1().Namespaces().Get(ctx, nsX, metav1.GetOptions{})
	require.NoError(t, err)

	parked := uniq("nsgone")
	spec, creds := buildSpec(t, parked, nsX, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
	id, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	e.deleteAtCleanup(t, parked)
	status.awaitFinals(t, opTimeout, connection.PhaseSucceeded, map[string]string{parked: id})

	require.NoError(t, cs.CoreV1().Namespaces().Delete(ctx, nsX, metav1.DeleteOptions{}))
	eventually(t, 2*time.Minute, "namespace "+nsX+" to be gone", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, nsX, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	e.awaitRecord(t, parked, "parked on its namespace", func(c connection.Connection) bool {
		return c.Status.Phase == connection.PhasePending && c.Status.Reason == connection.ReasonNamespaceNotFound
	})

	// Meanwhile other tenants work: their runs succeed and delete their Job.
	jobFailures := e.watchJobFailures(t)
	others := e.createBlobs(ctx, t, "nsother", other, 3)
	status.awaitFinals(t, opTimeout, connection.PhaseSucceeded, others)
	e.awaitConverged(t, opTimeout, others)
	e.assertRenderedSecrets(t, other, others)
	eventually(t, time.Minute, "sc-job to delete itself", func(ctx context.Context) (bool, error) {
		return jobGone(ctx, cs, systemNS, jobName)
	})
	assert.Empty(t, jobFailures(), "no sc-job run failed while a namespace was missing")
	e.awaitRecord(t, parked, "still parked, not Failed", func(c connection.Connection) bool {
		return c.Status.Phase == connection.PhasePending && c.Status.Reason == connection.ReasonNamespaceNotFound
	})

	// The namespace comes back: no command, the connection is rendered again.
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: nsX, Labels: xObj.Labels, Annotations: xObj.Annotations}}, metav1.CreateOptions{})
	require.NoError(t, err)
	e.awaitRecord(t, parked, "Succeeded again", func(c connection.Connection) bool {
		return c.Status.Phase == connection.PhaseSucceeded
	})
	_, err = getSecret(ctx, cs, nsX, connection.SecretName(connection.ObjectID(parked)))
	require.NoError(t, err, "the parked connection's Secret is rendered into the new namespace")
	e.assertRenderedSecrets(t, nsX, map[string]string{parked: id})

	// What the control plane heard: parked, never Failed, and Succeeded
	// again last (each record write has its own Nats-Msg-Id, so the
	// second Succeeded is not taken for a duplicate of the first).
	eventually(t, time.Minute, "the control plane to hear the connection Succeeded again", func(context.Context) (bool, error) {
		evs := status.of(parked)
		return len(evs) > 0 && evs[len(evs)-1].Phase == connection.PhaseSucceeded, nil
	})
	sawParked := false
	for _, ev := range status.of(parked) {
		assert.NotEqual(t, connection.PhaseFailed, ev.Phase, "%s: %s", ev.Reason, ev.Message)
		sawParked = sawParked || ev.Reason == connection.ReasonNamespaceNotFound
	}
	assert.True(t, sawParked, "the control plane heard that the connection waits for its namespace")
	var view protocol.ConnectionView
	e.query(t, protocol.VerbShow, parked, &view)
	assert.Equal(t, connection.PhaseSucceeded, view.Status.Phase)
	assert.EqualValues(t, 1, view.Generation, "no command was sent")
}

// TestSCJobKilledMidDrain kills the sc-job pod in the middle of its run:
// the gate holds sc-job back until all the connections are stored, so the
// one pod that starts has all of them to drain; an admission webhook of the
// test's own admits its first few rendered Secrets and holds the next, so
// when the pod is killed it has provably rendered some and not all,
// however fast the machine. The next run resumes, and every connection is
// rendered exactly once.
func TestSCJobKilledMidDrain(t *testing.T) {
	e := product(t)
	status := e.followStatus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cs := e.cluster.Clientset
	ns := e.targetNamespace(t)

	gate := e.closePodGate(t)
	const n, admitFirst = 80, 5
	requests := e.createBlobs(ctx, t, "drain", ns, n)
	awaitStored(t, status, requests)
	gate.awaitJobHeld(t)
	require.Equal(t, n, unfinished(status, requests), "nothing is rendered behind the gate")

	hold := e.holdCreates(t, "secrets", ns, "sc-drain", admitFirst)
	gate.open(t)
	admitted, held := hold.awaitHeld(t, 2*time.Minute)
	require.Equal(t, admitFirst, admitted)

	// The one sc-job pod: the only writer of those Secrets, now waiting on
	// the webhook.
	pods, err := cs.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + jobName})
	require.NoError(t, err)
	var running []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			running = append(running, p)
		}
	}
	require.Len(t, running, 1, "one sc-job pod is mid-run")
	pod := running[0]
	require.NoError(t, cs.CoreV1().Pods(systemNS).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &pod.UID}}))
	eventually(t, 2*time.Minute, "the killed sc-job pod is gone", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Pods(systemNS).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	// No connection is final without its Secret, and only admitFirst were
	// let through.
	final := n - unfinished(status, requests)
	require.LessOrEqual(t, final, admitFirst, "final statuses before the kill")
	t.Logf("killed %s with %d Secrets rendered and %d held mid-write; %d of %d requests final then", pod.Name, admitted, held, final, n)
	hold.open()

	status.awaitFinals(t, 5*time.Minute, connection.PhaseSucceeded, requests)
	e.awaitConverged(t, time.Minute, requests)
	e.assertRenderedSecrets(t, ns, requests)
}

// TestNATSServerRestartWhileConsuming restarts the control plane's NATS
// server (same store, same port) between two halves of a burst while the
// agent consumes the first: the gate keeps every request of the first
// half unfinished, so all of their statuses, and the whole second half,
// must cross the restarted server. Every request reaches exactly one final
// status.
func TestNATSServerRestartWhileConsuming(t *testing.T) {
	e := product(t)
	status := e.followStatus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ns := e.targetNamespace(t)
	pub := e.newPublisher(ctx, t, ns)
	gate := e.closePodGate(t)

	const half = 20
	first := pub.send(ctx, t, "natsrs", 0, half)
	awaitAccepted(t, status, first)
	left := unfinished(status, first)
	require.Equal(t, half, left, "behind the gate no request can have finished")
	t.Logf("restarting NATS with %d of %d requests unfinished", left, half)
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	require.NoError(t, e.nats.Restart(rctx))
	rcancel()
	pub.send(ctx, t, "natsrs", half, 2*half)
	// The agent consumes after the restart: the second half is stored.
	awaitStored(t, status, pub.requests)
	gate.awaitJobHeld(t)
	gate.open(t)

	status.awaitFinals(t, 5*time.Minute, connection.PhaseSucceeded, pub.requests)
	e.awaitConverged(t, time.Minute, pub.requests)
	e.assertRenderedSecrets(t, ns, pub.requests)
}

// awaitAccepted waits until the control plane heard the agent accept at
// least one of the requests (a non-final status carrying its id): from
// then on the agent is consuming them.
func awaitAccepted(t *testing.T, status *statusLog, requests map[string]string) {
	t.Helper()
	ids := map[string]bool{}
	for _, id := range requests {
		ids[id] = true
	}
	eventually(t, time.Minute, "the agent to accept a request", func(context.Context) (bool, error) {
		status.mu.Lock()
		defer status.mu.Unlock()
		for _, ev := range status.events {
			if ids[ev.RequestID] && !finalPhase(ev.Phase) {
				return true, nil
			}
		}
		return false, nil
	})
}

// unfinished counts the requests without a final status heard.
func unfinished(status *statusLog, requests map[string]string) int {
	n := 0
	for _, id := range requests {
		if len(status.finals(id)) == 0 {
			n++
		}
	}
	return n
}

// awaitRecord waits until the record of connection name satisfies cond.
func (e *env) awaitRecord(t *testing.T, name, what string, cond func(connection.Connection) bool) {
	t.Helper()
	eventually(t, opTimeout, name+" "+what, func(ctx context.Context) (bool, error) {
		recs, err := e.recordsOf(ctx, map[string]string{name: ""})
		if err != nil {
			return false, err
		}
		c, ok := recs[name]
		if !ok {
			return false, fmt.Errorf("no record")
		}
		if !cond(c) {
			return false, fmt.Errorf("record is %s/%s: %s", c.Status.Phase, c.Status.Reason, c.Status.Message)
		}
		return true, nil
	})
}

// createBlobs sends n storage-blob connections named prefix0..prefix(n-1)
// into ns and deletes them at cleanup; it returns name -> request id.
func (e *env) createBlobs(ctx context.Context, t *testing.T, prefix, ns string, n int) map[string]string {
	t.Helper()
	requests := map[string]string{}
	// Registered first: a failed create still leaves the earlier ones to
	// be deleted.
	e.deleteAllAtCleanup(t, requests)
	for i := range n {
		name := uniq(fmt.Sprintf("%s%d", prefix, i))
		spec, creds := buildSpec(t, name, ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
		id, err := e.cp.Create(ctx, spec, creds)
		require.NoError(t, err)
		requests[name] = id
	}
	return requests
}

// deleteAllAtCleanup deletes, at the end of the test and before its
// namespaces go, every connection of names (all were sent, though intake
// may not have stored them yet; a delete is ordered after its create),
// with one burst of deletes instead of one round trip each.
func (e *env) deleteAllAtCleanup(t *testing.T, names map[string]string) {
	t.Cleanup(func() {
		if e.uninstalled {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for name := range names {
			if _, err := e.cp.Delete(ctx, name, true); err != nil {
				t.Errorf("cleanup: delete %s: %v", name, err)
			}
		}
		eventually(t, 5*time.Minute, "the test's connections to be deleted", func(ctx context.Context) (bool, error) {
			recs, err := e.recordsOf(ctx, names)
			return err == nil && len(recs) == 0, err
		})
	})
}

// watchJobFailures records every sc-job run that fails from now until the
// returned func is called.
func (e *env) watchJobFailures(t *testing.T) func() []string {
	ctx, cancel := context.WithCancel(context.Background())
	w, err := e.cluster.Clientset.BatchV1().Jobs(systemNS).Watch(ctx,
		metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", jobName).String()})
	require.NoError(t, err)
	var (
		mu     sync.Mutex
		failed = map[string]string{}
	)
	done := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			j, ok := ev.Object.(*batchv1.Job)
			if ok && (jobFailed(j) || j.Status.Failed > 0) {
				mu.Lock()
				failed[string(j.UID)] = fmt.Sprintf("Job %s (uid %s): %d failed pods", j.Name, j.UID, j.Status.Failed)
				mu.Unlock()
			}
		}
	}()
	stop := func() []string {
		once.Do(func() {
			cancel()
			w.Stop()
			<-done
		})
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, f := range failed {
			out = append(out, f)
		}
		return out
	}
	t.Cleanup(func() { stop() })
	return stop
}
