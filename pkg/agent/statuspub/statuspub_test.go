package statuspub_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func stored() connection.Connection {
	return connection.Connection{
		Spec:       connection.Spec{Name: "My_Blob", Scope: "default"},
		Generation: 3,
		Status: connection.Status{Phase: connection.PhaseRunning, Reason: "Rendering", LastRequestID: "r3",
			Resources: []connection.ResourceRef{{Kind: "Secret", Namespace: "default", Name: "sc-x-secret"}},
			UpdatedAt: time.Unix(1700000000, 0).UTC(), Seq: 7, Incarnation: "inc-a"},
	}
}

func TestFromConnection(t *testing.T) {
	ev := statuspub.FromConnection("c1", stored())
	assert.Equal(t, protocol.StatusEvent{
		Header: protocol.NewHeader(protocol.KindStatus), Cluster: "c1", Connection: "My_Blob",
		ObjectID: connection.ObjectID("My_Blob"), RequestID: "r3", Generation: 3, Phase: connection.PhaseRunning,
		Reason: "Rendering", Resources: stored().Status.Resources, Time: time.Unix(1700000000, 0).UTC(),
		Seq: 7, Incarnation: "inc-a",
	}, ev)

	c := stored()
	c.Deletion = &connection.Deletion{RequestID: "d1"}
	del := statuspub.Deleted("c1", c)
	assert.Equal(t, connection.PhaseDeleted, del.Phase)
	assert.Equal(t, "d1", del.RequestID, "a waiter for the delete matches it")
	assert.EqualValues(t, 8, del.Seq, "after the record's last write")
	assert.Equal(t, "inc-a", del.Incarnation)
}

// A record's events are named by its write, so a phase and reason seen
// before (Succeeded, Pending/Drift, Succeeded) is a new event; intake's own
// events by their content, so a second, different error is too.
func TestMsgID(t *testing.T) {
	ev := statuspub.FromConnection("c1", stored())
	again := ev
	again.Time, again.Message = time.Now(), "re-published"
	assert.Equal(t, statuspub.MsgID(ev), statuspub.MsgID(again), "the same write")
	later := ev
	later.Seq++
	assert.NotEqual(t, statuspub.MsgID(ev), statuspub.MsgID(later), "same phase and reason, a later write")
	recreated := ev
	recreated.Incarnation = "inc-b"
	assert.NotEqual(t, statuspub.MsgID(ev), statuspub.MsgID(recreated), "same seq of a re-created record")

	retrying := protocol.StatusEvent{ObjectID: "x", RequestID: "r9", Phase: connection.PhasePending, Reason: "Retrying", Message: "retrying with backoff: etcd leader changed"}
	other := retrying
	other.Message = "retrying with backoff: 429 too many requests"
	assert.NotEqual(t, statuspub.MsgID(retrying), statuspub.MsgID(other), "a second, different error")
	assert.Equal(t, statuspub.MsgID(retrying), statuspub.MsgID(retrying))
}

func TestChanged(t *testing.T) {
	base := stored()
	mut := func(f func(*connection.Connection)) connection.Connection { c := stored(); f(&c); return c }
	assert.False(t, statuspub.Changed(base, mut(func(c *connection.Connection) { c.Status.UpdatedAt = time.Now() })), "timestamps alone")
	assert.False(t, statuspub.Changed(base, mut(func(c *connection.Connection) { c.Status.Message = "more detail" })))
	for name, f := range map[string]func(*connection.Connection){
		"phase":      func(c *connection.Connection) { c.Status.Phase = connection.PhaseSucceeded },
		"reason":     func(c *connection.Connection) { c.Status.Reason = "Conflict" },
		"generation": func(c *connection.Connection) { c.Generation++ },
		"request":    func(c *connection.Connection) { c.Status.LastRequestID = "r4" },
		"deletion":   func(c *connection.Connection) { c.Deletion = &connection.Deletion{RequestID: "d"} },
	} {
		assert.True(t, statuspub.Changed(base, mut(f)), name)
	}
}

// The intake and the informer both publish the same Pending: the stream
// keeps one. A different phase is a new event.
func TestPublishDeduplicates(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	_, js := devservertest.Agent(t, srv, "c1", zerolog.Nop())
	p := statuspub.New(js, "c1")
	ctx := context.Background()
	ev := statuspub.FromConnection("c1", stored())
	require.NoError(t, p.Publish(ctx, ev))
	ev.Time = time.Now() // a later copy of the same state
	require.NoError(t, p.Publish(ctx, ev))
	ev.Phase, ev.Seq = connection.PhaseSucceeded, ev.Seq+1
	require.NoError(t, p.Publish(ctx, ev))

	_, admin := devservertest.AdminConn(t, srv)
	s, err := admin.Stream(ctx, protocol.StatusStream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), info.State.Msgs)
	last, err := s.GetLastMsgForSubject(ctx, protocol.StatusSubject("c1", ev.ObjectID))
	require.NoError(t, err)
	assert.Equal(t, statuspub.MsgID(ev), last.Header.Get("Nats-Msg-Id"))

	ev.Cluster = "c2"
	require.ErrorIs(t, p.Publish(ctx, ev), statuspub.ErrWrongCluster)
}

// With nowhere to publish (server gone) the retry is bounded.
func TestPublishRetryIsBounded(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	_, js := devservertest.Agent(t, srv, "c1", zerolog.Nop())
	srv.Shutdown()
	p := statuspub.New(js, "c1", statuspub.WithRetry(3, 10*time.Millisecond), statuspub.WithTimeout(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	begin := time.Now()
	err := p.Publish(ctx, statuspub.FromConnection("c1", stored()))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "after 3 attempt(s)")
	assert.Less(t, time.Since(begin), 2*time.Second)
}
