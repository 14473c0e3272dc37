//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// TestAgentKilledWithRequestsInFlight deletes the agent pod right after a
// burst of requests: every request must still be applied, and none twice
// (each connection ends at generation 1 with its one request id).
func TestAgentKilledWithRequestsInFlight(t *testing.T) {
	e := product(t)
	ns := e.targetNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := e.cluster.Clientset

	const n = 15
	ids := make([]string, n)
	for i := range n {
		spec, creds := buildSpec(t, uniq(fmt.Sprintf("burst%d", i)), ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
		id, err := e.cp.Create(ctx, spec, creds)
		require.NoError(t, err)
		e.deleteAtCleanup(t, spec.Name)
		ids[i] = id
	}
	pods, err := cs.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=agent"})
	require.NoError(t, err)
	require.NotEmpty(t, pods.Items, "agent pods")
	for _, p := range pods.Items {
		e.keepLogOnFailure(t, p.Name) // the killed pod's log is gone with it
		require.NoError(t, cs.CoreV1().Pods(systemNS).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	}

	var wg sync.WaitGroup
	results := make([]protocol.StatusEvent, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.cp.Wait(ctx, uniq(fmt.Sprintf("burst%d", i)), ids[i], nil)
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "burst%d", i)
		assert.Equal(t, connection.PhaseSucceeded, results[i].Phase, "burst%d: %s", i, results[i].Message)

		var view protocol.ConnectionView
		e.query(t, protocol.VerbShow, uniq(fmt.Sprintf("burst%d", i)), &view)
		assert.EqualValues(t, 1, view.Generation, "burst%d applied exactly once", i)
		assert.Equal(t, ids[i], view.Status.LastRequestID)
		_, err := getSecret(ctx, cs, ns, connection.SecretName(uniq(fmt.Sprintf("burst%d", i))))
		assert.NoError(t, err)
	}
}

// keepLogOnFailure follows a pod's log into memory and prints it if the
// test fails: a pod about to be killed takes its log with it.
func (e *env) keepLogOnFailure(t *testing.T, pod string) {
	stream, err := e.cluster.Clientset.CoreV1().Pods(systemNS).GetLogs(pod, &corev1.PodLogOptions{Follow: true}).Stream(context.Background())
	require.NoError(t, err)
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(&buf, stream)
	}()
	t.Cleanup(func() {
		stream.Close()
		<-done
		if t.Failed() {
			t.Logf("log of killed pod %s:\n%s", pod, buf.String())
		}
	})
}

// TestResentRequestChangesNothing re-publishes an already applied request
// (same id, as a control plane retrying would): nothing changes.
func TestResentRequestChangesNothing(t *testing.T) {
	e := product(t)
	ns := e.targetNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spec, creds := buildSpec(t, uniq("resent"), ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
	require.Equal(t, connection.PhaseSucceeded, e.apply(t, protocol.OpCreate, spec, creds).Phase)
	var first protocol.ConnectionView
	e.query(t, protocol.VerbShow, uniq("resent"), &first)

	pub, err := e.cp.PublicKey(ctx)
	require.NoError(t, err)
	sealed, err := protocol.Seal(creds, pub)
	require.NoError(t, err)
	req := protocol.Request{Header: protocol.NewHeader(protocol.KindRequest), ID: first.Status.LastRequestID,
		Cluster: clusterID, Op: protocol.OpCreate, SentAt: time.Now(), Connection: spec, Credentials: sealed}
	require.NoError(t, e.cp.Resend(ctx, req))
	// The resent request's status was Succeeded before it was sent, so a
	// Wait alone would pass even if the agent never read it: first prove
	// the agent consumed and acked it (the consumer's ack floor reaches the
	// stream's last sequence).
	e.requireConsumed(ctx, t)
	ev, err := e.cp.Wait(ctx, uniq("resent"), req.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, connection.PhaseSucceeded, ev.Phase, "the current status is re-published")

	var after protocol.ConnectionView
	e.query(t, protocol.VerbShow, uniq("resent"), &after)
	assert.Equal(t, first.Generation, after.Generation)
}

// requireConsumed waits until this cluster's agent consumer has acked every
// request the stream holds, as the control plane's admin sees it.
func (e *env) requireConsumed(ctx context.Context, t *testing.T) {
	t.Helper()
	admin := shared.nats.Admin()
	nc, err := nats.Connect(shared.nats.ClientURL(), nats.UserInfo(admin.User, admin.Password))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(ctx, protocol.RequestStream)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	last := info.State.LastSeq
	consumer, err := stream.Consumer(ctx, protocol.ConsumerName(clusterID))
	require.NoError(t, err)
	var floor uint64
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		ci, err := consumer.Info(ctx)
		if err != nil {
			return false, err
		}
		floor = ci.AckFloor.Stream
		return floor >= last, nil
	}), "the agent never acked stream sequence %d (ack floor %d)", last, floor)
}
