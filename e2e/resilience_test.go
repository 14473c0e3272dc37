//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

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
