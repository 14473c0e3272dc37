package devserver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// A leaked cluster credential holds only what ClusterPermissions grants:
// none of the JetStream API calls that change or read streams, and no read
// of another cluster's requests.
func TestLeakedClusterCredentialCannotTouchTheStreams(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"a", "b"}})
	cp := devservertest.ControlPlane(t, srv, "b", 2*time.Second)
	_, err := cp.PublishRaw(context.Background(), "b-1", []byte(`{"for":"b"}`), true)
	require.NoError(t, err)
	a := dialAs(t, srv, "a")

	req, st := protocol.RequestStream, protocol.StatusStream
	for _, subj := range []string{
		"$JS.API.STREAM.CREATE.EVIL", "$JS.API.STREAM.UPDATE." + st, "$JS.API.STREAM.UPDATE." + req,
		"$JS.API.STREAM.DELETE." + st, "$JS.API.STREAM.DELETE." + req,
		"$JS.API.STREAM.PURGE." + st, "$JS.API.STREAM.PURGE." + req,
		"$JS.API.STREAM.MSG.DELETE." + st, "$JS.API.STREAM.MSG.GET." + req, "$JS.API.DIRECT.GET." + req,
		"$JS.API.STREAM.INFO." + req, "$JS.API.STREAM.LIST", "$JS.API.STREAM.NAMES",
		"$JS.API.CONSUMER.CREATE." + req, "$JS.API.CONSUMER.CREATE." + req + ".agent-a",
		"$JS.API.CONSUMER.DURABLE.CREATE." + req + ".agent-a",
		"$JS.API.CONSUMER.DELETE." + req + ".agent-b", "$JS.API.CONSUMER.DELETE." + req + ".agent-a",
		"$JS.API.CONSUMER.LIST." + req, "$JS.API.CONSUMER.INFO." + req + ".agent-b",
		"$JS.API.CONSUMER.MSG.NEXT." + req + ".agent-b", "$JS.ACK." + req + ".agent-b.1.1.1.1.1",
		"$JS.API.ACCOUNT.INFO",
	} {
		require.NoError(t, a.nc.Publish(subj, []byte(`{}`)), subj)
		a.denied(t, "Publish", subj)
	}

	// Through the JetStream client too: every call fails, none succeeds
	// by some other path.
	_, err = a.js.CreateStream(short(t), jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"sc.v1.a.status.evil"}})
	require.Error(t, err)
	require.Error(t, a.js.DeleteStream(short(t), st))
	_, err = a.js.OrderedConsumer(short(t), req, jetstream.OrderedConsumerConfig{FilterSubjects: []string{protocol.RequestSubject("b")}})
	require.Error(t, err)

	_, adminJS := devservertest.AdminConn(t, srv)
	s, err := adminJS.Stream(context.Background(), req)
	require.NoError(t, err)
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(protocol.RequestSubject("b")))
	require.NoError(t, err)
	assert.Equal(t, map[string]uint64{protocol.RequestSubject("b"): 1}, info.State.Subjects, "b's request is still queued, unread")
	_, err = adminJS.Stream(context.Background(), "EVIL")
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
}

func TestStatusStreamLimitsHoldAgainstOneCluster(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"a", "b"}})
	a := dialAs(t, srv, "a")
	ctx := context.Background()

	t.Run("a message above the size limit is refused", func(t *testing.T) {
		_, err := a.js.Publish(ctx, protocol.StatusSubject("a", "big"), make([]byte, natsbus.StatusMaxMsgSize+1))
		var apiErr *jetstream.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Contains(t, apiErr.Description, "message size exceeds maximum allowed")
		// The largest event the agent may encode still fits, with its headers.
		_, err = a.js.Publish(ctx, protocol.StatusSubject("a", "largest"), make([]byte, protocol.MaxMessageBytes),
			jetstream.WithMsgID(strings.Repeat("i", 128)), jetstream.WithExpectStream(protocol.StatusStream))
		require.NoError(t, err)
	})

	t.Run("each subject keeps its newest events", func(t *testing.T) {
		subj := protocol.StatusSubject("a", "conn1")
		for i := range natsbus.StatusPerSubject + 3 {
			_, err := a.js.Publish(ctx, subj, fmt.Appendf(nil, "event-%d", i))
			require.NoError(t, err)
		}
		_, adminJS := devservertest.AdminConn(t, srv)
		s, err := adminJS.Stream(ctx, protocol.StatusStream)
		require.NoError(t, err)
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
		require.NoError(t, err)
		assert.EqualValues(t, natsbus.StatusPerSubject, info.State.Subjects[subj])
		last, err := s.GetLastMsgForSubject(ctx, subj)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("event-%d", natsbus.StatusPerSubject+2), string(last.Data))
		c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
		require.NoError(t, err)
		first, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		require.NoError(t, err)
		assert.Equal(t, "event-3", string(first.Data()), "the three oldest were dropped")
	})
}

// A flood of distinct subjects from one credential ends at the stream's
// byte cap; the other cluster's queued request and its newest status are
// untouched and it keeps publishing. The cap is small here so the flood is
// quick; the production numbers are natsbus' constants.
func TestStatusFloodIsBoundedByTheStreamCap(t *testing.T) {
	const capBytes = 1 << 20
	status := natsbus.StatusStreamConfig()
	status.MaxBytes = capBytes
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"a", "b"},
		Streams: []jetstream.StreamConfig{natsbus.RequestStreamConfig(), status}})
	ctx := context.Background()
	cp := devservertest.ControlPlane(t, srv, "b", 2*time.Second)
	_, err := cp.PublishRaw(ctx, "b-1", []byte(`{"for":"b"}`), true)
	require.NoError(t, err)

	a, b := dialAs(t, srv, "a"), dialAs(t, srv, "b")
	payload := make([]byte, 32<<10)
	for i := range 3 * capBytes / len(payload) {
		_, err := a.js.Publish(ctx, protocol.StatusSubject("a", fmt.Sprintf("flood-%d", i)), payload)
		require.NoError(t, err, "DiscardOld: the flood is accepted and evicts the oldest, it never blocks the stream")
	}
	_, err = b.js.Publish(ctx, protocol.HeartbeatSubject("b"), []byte(`{"b":"alive"}`))
	require.NoError(t, err, "b still publishes after the flood")

	_, adminJS := devservertest.AdminConn(t, srv)
	s, err := adminJS.Stream(ctx, protocol.StatusStream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	assert.LessOrEqual(t, info.State.Bytes, uint64(capBytes), "the status stream never exceeds its cap")
	t.Logf("after a %d KiB flood against a %d KiB cap: %d bytes in %d messages", 3*capBytes>>10, capBytes>>10, info.State.Bytes, info.State.Msgs)
	hb, err := s.GetLastMsgForSubject(ctx, protocol.HeartbeatSubject("b"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"b":"alive"}`, string(hb.Data))

	reqs, err := adminJS.Stream(ctx, protocol.RequestStream)
	require.NoError(t, err)
	rinfo, err := reqs.Info(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 1, rinfo.State.Msgs, "the request stream is a separate store the flood cannot reach")
}

// The control plane cannot queue more than RequestMaxPerCluster requests
// for one cluster (an agent that is gone); the next is refused with an
// error, not evicted, and other clusters are unaffected.
func TestRequestStreamRefusesBeyondPerClusterLimit(t *testing.T) {
	const perCluster = 3
	reqCfg := natsbus.RequestStreamConfig()
	reqCfg.MaxMsgsPerSubject = perCluster
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"a", "b"},
		Streams: []jetstream.StreamConfig{reqCfg, natsbus.StatusStreamConfig()}})
	ctx := context.Background()
	cpB := devservertest.ControlPlane(t, srv, "b", 2*time.Second)
	for i := range perCluster {
		_, err := cpB.PublishRaw(ctx, fmt.Sprintf("b-%d", i), []byte(`{}`), true)
		require.NoError(t, err)
	}
	_, err := cpB.PublishRaw(ctx, "b-over", []byte(`{}`), true)
	var apiErr *jetstream.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Contains(t, apiErr.Description, "maximum messages per subject exceeded")

	cpA := devservertest.ControlPlane(t, srv, "a", 2*time.Second)
	_, err = cpA.PublishRaw(ctx, "a-1", []byte(`{}`), true)
	require.NoError(t, err, "another cluster's requests are still accepted")

	_, adminJS := devservertest.AdminConn(t, srv)
	s, err := adminJS.Stream(ctx, protocol.RequestStream)
	require.NoError(t, err)
	first, err := s.GetMsg(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, "b-0", first.Header.Get(jetstream.MsgIDHeader), "the oldest queued request was kept")
}

// Streams an older control plane created without limits are updated in
// place on start, keeping their messages.
func TestStartUpdatesUnboundedStreamsInPlace(t *testing.T) {
	dir := t.TempDir()
	oldReq, oldStatus := natsbus.RequestStreamConfig(), natsbus.StatusStreamConfig()
	oldReq.Discard, oldReq.DiscardNewPerSubject, oldReq.MaxBytes, oldReq.MaxMsgsPerSubject = jetstream.DiscardOld, false, 0, 0
	oldStatus.MaxAge, oldStatus.MaxBytes, oldStatus.MaxMsgs, oldStatus.MaxMsgSize = 0, 0, 0, 1<<20
	old := devservertest.Start(t, devserver.Options{StoreDir: dir, Clusters: []string{"a"},
		Streams: []jetstream.StreamConfig{oldReq, oldStatus}})
	cp := devservertest.ControlPlane(t, old, "a", 2*time.Second)
	_, err := cp.PublishRaw(context.Background(), "a-1", []byte(`{}`), true)
	require.NoError(t, err)
	cp.Close()
	old.Shutdown()

	srv := devservertest.Start(t, devserver.Options{StoreDir: dir, Clusters: []string{"a"}})
	_, adminJS := devservertest.AdminConn(t, srv)
	for _, want := range []jetstream.StreamConfig{natsbus.RequestStreamConfig(), natsbus.StatusStreamConfig()} {
		s, err := adminJS.Stream(context.Background(), want.Name)
		require.NoError(t, err)
		got := s.CachedInfo().Config
		assert.Equal(t, want.Discard, got.Discard, want.Name)
		assert.Equal(t, want.DiscardNewPerSubject, got.DiscardNewPerSubject, want.Name)
		assert.Equal(t, want.MaxAge, got.MaxAge, want.Name)
		assert.Equal(t, want.MaxBytes, got.MaxBytes, want.Name)
		if want.MaxMsgs == 0 {
			want.MaxMsgs = -1 // the server's "unlimited"
		}
		assert.Equal(t, want.MaxMsgs, got.MaxMsgs, want.Name)
		assert.Equal(t, want.MaxMsgsPerSubject, got.MaxMsgsPerSubject, want.Name)
		assert.Equal(t, want.MaxMsgSize, got.MaxMsgSize, want.Name)
		if want.Name == protocol.RequestStream {
			assert.EqualValues(t, 1, s.CachedInfo().State.Msgs, "the queued request survived the update")
		}
	}
}
