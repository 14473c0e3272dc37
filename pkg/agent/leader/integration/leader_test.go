//go:build integration

// Package leader_integration runs leader election against a real API server,
// whose optimistic concurrency on the Lease is what makes election safe (the
// fake clientset does not enforce resourceVersion conflicts).
package leader_integration

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/agent/leader"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

// A long LeaseDuration makes the test prove that takeover came from the
// release, not from expiry.
const leaseDuration = 20 * time.Second

// stolenTerm (seconds) outlasts the 3s RenewDeadline used when stealing.
const stolenTerm = 5

func setup(t *testing.T) (kubernetes.Interface, string) {
	t.Helper()
	// The default 5 QPS would let the test's own polling starve the
	// electors' renewals, which share the client.
	return kubetest.New(t, kubetest.QPS(100, 200)).Clientset, kubetest.Namespace(t)
}

// tracker records which identities are leading right now and the most that
// ever led at once.
type tracker struct {
	mu      sync.Mutex
	leading map[string]bool
	maxSeen int
	started chan string
}

func newTracker() *tracker {
	return &tracker{leading: map[string]bool{}, started: make(chan string, 8)}
}

func (tr *tracker) lead(id string) func(context.Context) {
	return func(ctx context.Context) {
		tr.mu.Lock()
		tr.leading[id] = true
		if n := len(tr.leading); n > tr.maxSeen {
			tr.maxSeen = n
		}
		tr.mu.Unlock()
		tr.started <- id
		<-ctx.Done()
		tr.mu.Lock()
		delete(tr.leading, id)
		tr.mu.Unlock()
	}
}

func TestOneLeaderAndFastHandoverOnCancel(t *testing.T) {
	client, ns := setup(t)
	tr := newTracker()
	cfg := func(id string) leader.Config {
		return leader.Config{Client: client, Namespace: ns, Identity: id,
			LeaseDuration: leaseDuration, RenewDeadline: 10 * time.Second, RetryPeriod: 500 * time.Millisecond,
			Log: zerolog.Nop()}
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { doneA <- leader.Run(ctxA, cfg("agent-a"), tr.lead("agent-a")) }()
	go func() { doneB <- leader.Run(ctxB, cfg("agent-b"), tr.lead("agent-b")) }()

	first := waitStarted(t, tr, 30*time.Second)
	// Give the other elector several retry periods to (wrongly) take over.
	lease := waitLease(t, client, ns, first)
	assert.Equal(t, first, ptr.Deref(lease.Spec.HolderIdentity, ""))
	select {
	case id := <-tr.started:
		t.Fatalf("%s started leading while %s held the Lease", id, first)
	case <-time.After(3 * time.Second):
	}

	cancelFirst, firstDone, second := cancelA, doneA, "agent-b"
	if first == "agent-b" {
		cancelFirst, firstDone, second = cancelB, doneB, "agent-a"
	}
	handover := time.Now()
	cancelFirst()
	require.NoError(t, <-firstDone)
	assert.Equal(t, second, waitStarted(t, tr, leaseDuration/2), "the other replica took over before the Lease could expire")
	t.Logf("handover took %s (lease duration %s)", time.Since(handover).Round(time.Millisecond), leaseDuration)

	tr.mu.Lock()
	assert.Equal(t, 1, tr.maxSeen, "never more than one leader at a time")
	tr.mu.Unlock()

	cancelA()
	cancelB()
	require.NoError(t, <-map[string]chan error{"agent-a": doneA, "agent-b": doneB}[second])
}

// A leader that loses its Lease (another holder wrote it, as after a network
// partition longer than LeaseDuration) stops leading and competes again.
func TestLosingTheLeaseStopsLeadAndCompetesAgain(t *testing.T) {
	client, ns := setup(t)
	tr := newTracker()
	terms := make(chan context.Context, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- leader.Run(ctx, leader.Config{Client: client, Namespace: ns, Identity: "agent-a",
			LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 300 * time.Millisecond,
			Log: zerolog.Nop()}, func(leadCtx context.Context) {
			terms <- leadCtx
			tr.lead("agent-a")(leadCtx)
		})
	}()
	first := <-terms
	<-tr.started

	// Steal the Lease for longer than agent-a's RenewDeadline, so agent-a
	// cannot simply take the expired Lease back within one renewal attempt.
	l := waitLease(t, client, ns, "agent-a")
	now := metav1.NewMicroTime(time.Now())
	l.Spec.HolderIdentity = ptr.To("agent-b")
	l.Spec.LeaseDurationSeconds = ptr.To[int32](stolenTerm)
	l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
	for {
		_, err := client.CoordinationV1().Leases(ns).Update(context.Background(), l, metav1.UpdateOptions{})
		if err == nil {
			break
		}
		// agent-a renewed in between: take the fresh copy and steal again
		l = waitLease(t, client, ns, "agent-a")
		l.Spec.HolderIdentity = ptr.To("agent-b")
		l.Spec.LeaseDurationSeconds = ptr.To[int32](stolenTerm)
		l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
	}

	select {
	case <-first.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("lead kept running after the Lease was lost")
	}
	select {
	case second := <-terms:
		assert.NoError(t, second.Err())
	case <-time.After(20 * time.Second):
		t.Fatal("did not compete again after losing the Lease")
	}
	cancel()
	require.NoError(t, <-done)
	// Run releases synchronously before it returns.
	l, err := client.CoordinationV1().Leases(ns).Get(context.Background(), leader.DefaultLeaseName, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "", ptr.Deref(l.Spec.HolderIdentity, ""), "released on cancel")
}

func waitStarted(t *testing.T, tr *tracker, timeout time.Duration) string {
	t.Helper()
	select {
	case id := <-tr.started:
		return id
	case <-time.After(timeout):
		t.Fatalf("nobody started leading within %s", timeout)
		return ""
	}
}

// waitLease returns the Lease once holder holds it.
func waitLease(t *testing.T, client kubernetes.Interface, ns, holder string) *coordinationv1.Lease {
	t.Helper()
	var lease *coordinationv1.Lease
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 15*time.Second, true,
		func(ctx context.Context) (bool, error) {
			l, err := client.CoordinationV1().Leases(ns).Get(ctx, leader.DefaultLeaseName, metav1.GetOptions{})
			if err != nil || ptr.Deref(l.Spec.HolderIdentity, "") != holder {
				return false, nil
			}
			lease = l
			return true, nil
		})
	require.NoError(t, err, "Lease not held by %q", holder)
	return lease
}
