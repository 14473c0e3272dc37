package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/agent/heartbeat"
	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

const cluster = "c1"

func start(t *testing.T) *devserver.Server {
	return devservertest.Start(t, devserver.Options{Clusters: []string{cluster}})
}

// No agent subscribed: the server answers "no responders" at once, so the
// query fails in a small fraction of its timeout, naming the cluster.
func TestQueryWithoutAgentFailsFast(t *testing.T) {
	srv := start(t)
	const timeout = 4 * time.Second
	cp := devservertest.ControlPlane(t, srv, cluster, timeout)
	begin := time.Now()
	_, err := cp.PublicKey(context.Background())
	took := time.Since(begin)
	require.ErrorIs(t, err, controlplane.ErrAgentUnreachable)
	assert.Contains(t, err.Error(), "cluster "+cluster)
	assert.Less(t, took, timeout/10, "fails fast, not at the timeout")
	t.Logf("no-agent query failed after %s (timeout %s)", took.Round(time.Microsecond), timeout)
}

// An agent that receives but never answers: the query gives up at its
// timeout with the same error, never hangs.
func TestQueryToSilentAgentTimesOut(t *testing.T) {
	srv := start(t)
	nc, _ := devservertest.Agent(t, srv, cluster, zerolog.Nop())
	_, err := nc.Subscribe(protocol.QuerySubjectAll(cluster), func(*nats.Msg) {})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	const timeout = 300 * time.Millisecond
	cp := devservertest.ControlPlane(t, srv, cluster, timeout)
	begin := time.Now()
	err = cp.Query(context.Background(), protocol.Query{Verb: protocol.VerbList}, nil)
	took := time.Since(begin)
	require.ErrorIs(t, err, controlplane.ErrAgentUnreachable)
	assert.GreaterOrEqual(t, took, timeout)
	assert.Less(t, took, 3*timeout)
}

func event(id string, gen int64, phase connection.Phase, reason string) protocol.StatusEvent {
	return protocol.StatusEvent{Header: protocol.NewHeader(protocol.KindStatus), Cluster: cluster, Connection: "blob1",
		ObjectID: connection.ObjectID("blob1"), RequestID: id, Generation: gen, Phase: phase, Reason: reason, Time: time.Now().UTC()}
}

func TestWait(t *testing.T) {
	srv := start(t)
	_, js := devservertest.Agent(t, srv, cluster, zerolog.Nop())
	pub := statuspub.New(js, cluster)
	cp := devservertest.ControlPlane(t, srv, cluster, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	publish := func(evs ...protocol.StatusEvent) {
		for _, ev := range evs {
			require.NoError(t, pub.Publish(ctx, ev))
		}
	}

	t.Run("outcome published before Wait started", func(t *testing.T) {
		publish(event("r1", 1, connection.PhasePending, "Accepted"), event("r1", 1, connection.PhaseRunning, ""),
			event("r1", 1, connection.PhaseSucceeded, "Rendered"))
		var seen []connection.Phase
		ev, err := cp.Wait(ctx, "blob1", "r1", func(ev protocol.StatusEvent) { seen = append(seen, ev.Phase) })
		require.NoError(t, err)
		assert.Equal(t, connection.PhaseSucceeded, ev.Phase)
		assert.Equal(t, []connection.Phase{connection.PhasePending, connection.PhaseRunning, connection.PhaseSucceeded}, seen)
	})

	t.Run("outcome published while waiting; other requests' failures ignored", func(t *testing.T) {
		done := make(chan protocol.StatusEvent, 1)
		accepted := make(chan struct{})
		var once bool
		go func() {
			ev, err := cp.Wait(ctx, "blob1", "r2", func(ev protocol.StatusEvent) {
				if ev.RequestID == "r2" && !once {
					once = true
					close(accepted)
				}
			})
			assert.NoError(t, err)
			done <- ev
		}()
		publish(event("r2", 2, connection.PhasePending, "Accepted"))
		<-accepted
		publish(event("bad", 0, connection.PhaseFailed, "InvalidConnection")) // rejected at intake
		publish(event("r2", 2, connection.PhaseFailed, "Conflict"))
		ev := <-done
		assert.Equal(t, "r2", ev.RequestID)
		assert.Equal(t, "Conflict", ev.Reason)
	})

	t.Run("superseded by a newer request", func(t *testing.T) {
		publish(event("r3", 3, connection.PhasePending, "Accepted"), event("r4", 4, connection.PhasePending, "Accepted"),
			event("r4", 4, connection.PhaseSucceeded, "Rendered"))
		ev, err := cp.Wait(ctx, "blob1", "r3", nil)
		require.NoError(t, err)
		assert.Equal(t, "r4", ev.RequestID)
		assert.Equal(t, int64(4), ev.Generation)
	})

	t.Run("rejected at intake", func(t *testing.T) {
		publish(event("r5", 0, connection.PhaseFailed, "UnsupportedVersion"))
		ev, err := cp.Wait(ctx, "blob1", "r5", nil)
		require.NoError(t, err)
		assert.Equal(t, "UnsupportedVersion", ev.Reason)
	})

	t.Run("gives up with its context", func(t *testing.T) {
		wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer wcancel()
		_, err := cp.Wait(wctx, "blob1", "never", nil)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestLatestHeartbeat(t *testing.T) {
	srv := start(t)
	cp := devservertest.ControlPlane(t, srv, cluster, 2*time.Second)
	_, err := cp.LatestHeartbeat(context.Background())
	require.ErrorIs(t, err, controlplane.ErrNoHeartbeat)

	nc, _ := devservertest.Agent(t, srv, cluster, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() {
		stopped <- heartbeat.Run(ctx, nc, heartbeat.Options{Cluster: cluster, Version: "v1.2.3", Pod: "agent-0",
			Interval: time.Hour, State: func() heartbeat.State {
				return heartbeat.State{Leader: true, Ready: true, Connections: 7, LastError: "apply blob1: conflict"}
			}})
	}()
	var hb protocol.Heartbeat
	require.Eventually(t, func() bool {
		hb, err = cp.LatestHeartbeat(context.Background())
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "the first heartbeat goes out at start, not after Interval")
	assert.Equal(t, "v1.2.3", hb.AgentVersion)
	assert.Equal(t, "agent-0", hb.Pod)
	assert.True(t, hb.Leader && hb.Ready)
	assert.Equal(t, 7, hb.Connections)
	assert.Equal(t, "apply blob1: conflict", hb.LastError)
	cancel()
	require.NoError(t, <-stopped)
}

func TestRequestsAreValidatedBeforeSending(t *testing.T) {
	srv := start(t)
	cp := devservertest.ControlPlane(t, srv, cluster, time.Second)
	_, err := cp.Create(context.Background(), connection.Spec{Name: "bad name"}, nil)
	require.ErrorIs(t, err, connection.ErrInvalid)
	_, err = cp.Delete(context.Background(), "bad name", false)
	require.ErrorIs(t, err, connection.ErrInvalid)
	id, err := cp.Delete(context.Background(), "blob1", true)
	require.NoError(t, err)
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, id)

	_, js := devservertest.AdminConn(t, srv)
	s, err := js.Stream(context.Background(), protocol.RequestStream)
	require.NoError(t, err)
	raw, err := s.GetLastMsgForSubject(context.Background(), protocol.RequestSubject(cluster))
	require.NoError(t, err)
	req, err := protocol.DecodeRequest(raw.Data)
	require.NoError(t, err)
	assert.Equal(t, protocol.OpDelete, req.Op)
	assert.True(t, req.DeleteResources)
	assert.Equal(t, id, req.ID)
}

func TestReplyErrorsAreTyped(t *testing.T) {
	srv := start(t)
	nc, _ := devservertest.Agent(t, srv, cluster, zerolog.Nop())
	_, err := nc.Subscribe(protocol.QuerySubjectAll(cluster), func(m *nats.Msg) {
		b, _ := protocol.Encode(protocol.ErrorReply(protocol.CodeNotFound, "connection \"x\" not found"))
		_ = m.Respond(b)
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	cp := devservertest.ControlPlane(t, srv, cluster, time.Second)
	err = cp.Query(context.Background(), protocol.Query{Verb: protocol.VerbShow, Connection: "x"}, nil)
	var re *protocol.ReplyError
	require.True(t, errors.As(err, &re), "%v", err)
	assert.Equal(t, protocol.CodeNotFound, re.Code)
	assert.False(t, errors.Is(err, controlplane.ErrAgentUnreachable))
}

// A control plane that is down is told apart from one that refuses the
// user: scctl exits 3 for the first only.
func TestDialStoppedServerIsUnreachable(t *testing.T) {
	srv := start(t)
	admin := srv.Admin()
	opts := controlplane.Options{URL: srv.ClientURL(), User: admin.User, Password: admin.Password, Cluster: cluster, Timeout: 2 * time.Second}

	wrong := opts
	wrong.Password = "not-the-password"
	_, err := controlplane.Dial(context.Background(), wrong)
	require.Error(t, err)
	assert.NotErrorIs(t, err, controlplane.ErrServerUnreachable, "a server that answers is reachable")

	srv.Shutdown()
	_, err = controlplane.Dial(context.Background(), opts)
	require.ErrorIs(t, err, controlplane.ErrServerUnreachable)
	assert.ErrorIs(t, err, nats.ErrNoServers)
	assert.NotContains(t, err.Error(), admin.Password)
}

// A full request queue is a sentinel the caller can back off on, not an
// anonymous API error, and the refused request is not stored.
func TestFullQueueIsClusterBacklog(t *testing.T) {
	small := natsbus.RequestStreamConfig()
	small.MaxMsgsPerSubject = 2
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{cluster},
		Streams: []jetstream.StreamConfig{small, natsbus.StatusStreamConfig()}})
	cp := devservertest.ControlPlane(t, srv, cluster, 2*time.Second)
	ctx := context.Background()
	for i := range 2 {
		_, err := cp.Delete(ctx, fmt.Sprintf("c%d", i), false)
		require.NoError(t, err)
	}
	_, err := cp.Delete(ctx, "c2", false)
	require.ErrorIs(t, err, controlplane.ErrClusterBacklog)
	assert.Contains(t, err.Error(), "for cluster c1: the cluster's request queue is full; its agent is behind or down")

	_, js := devservertest.AdminConn(t, srv)
	st, err := js.Stream(ctx, protocol.RequestStream)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 2, info.State.Msgs)
}

// What no new consumer can ride out ends a Wait at once instead of
// waiting out its context: a closed client, a status stream that does not
// exist.
func TestWaitReturnsAtOnceWhenFollowingCannotResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()

	srv := start(t)
	cp := devservertest.ControlPlane(t, srv, cluster, 2*time.Second)
	cp.Close()
	_, err := cp.Wait(ctx, "db", "req-1", nil)
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
	require.NoError(t, ctx.Err())

	noStatus := devservertest.Start(t, devserver.Options{Clusters: []string{cluster},
		Streams: []jetstream.StreamConfig{natsbus.RequestStreamConfig()}})
	cp = devservertest.ControlPlane(t, noStatus, cluster, 2*time.Second)
	_, err = cp.Wait(ctx, "db", "req-1", nil)
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
	require.NoError(t, ctx.Err())
}
