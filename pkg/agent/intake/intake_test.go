package intake_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ofRequest(id string) func(protocol.StatusEvent) bool {
	return func(ev protocol.StatusEvent) bool { return ev.RequestID == id }
}

// The server drops a publish retried with the same id; the agent ignores a
// re-send that got past the server (after its window), acks it and
// re-publishes the connection's current status, which ends the waiter.
func TestRequestIsAppliedOnce(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	e.agent(true)
	ctx := ctxT(t)
	spec, creds := e.spec("blob1")
	events := e.statuses("blob1")

	id, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	accepted := await(t, events, "accepted", ofRequest(id))
	assert.Equal(t, connection.PhasePending, accepted.Phase)
	assert.Equal(t, intake.ReasonAccepted, accepted.Reason)
	assert.Equal(t, int64(1), accepted.Generation)
	e.settled()

	// what the control plane sent, rebuilt from the stored request id
	req := protocol.Request{Header: protocol.NewHeader(protocol.KindRequest), ID: id, Cluster: cluster,
		Op: protocol.OpCreate, Connection: spec}
	req.Credentials, err = protocol.Seal(creds, mustPub(t, e.key))
	require.NoError(t, err)

	dup, err := e.cp.Publish(ctx, req)
	require.NoError(t, err)
	assert.True(t, dup, "same Nats-Msg-Id within the window is dropped by the server")

	e.store.finish("blob1") // sc-job ran meanwhile
	require.NoError(t, e.cp.Resend(ctx, req))
	final, err := e.cp.Wait(ctx, "blob1", id, nil)
	require.NoError(t, err)
	assert.Equal(t, connection.PhaseSucceeded, final.Phase, "the duplicate re-published the current status")
	e.settled()

	calls, applied := e.store.snapshot()
	assert.Equal(t, 2, calls, "the first send and the re-send reached the store; the server-side duplicate did not")
	assert.Equal(t, []string{id}, applied)
	assert.Equal(t, creds, e.store.Credentials(connection.ObjectID("blob1")), "credentials opened with the agent key")
}

// An agent stopped while Apply runs hands the request back (NAK) and the
// next agent applies it at once. An agent that crashes (its connection
// gone, no NAK possible) loses the request to the next agent after AckWait.
func TestInterruptedApplyIsRedelivered(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := map[bool]string{false: "shutdown", true: "crash"}[crash]
		t.Run(name, func(t *testing.T) {
			const ackWait = 2 * time.Second
			e := newEnv(t, devserver.Options{AckWait: ackWait})
			ctx := ctxT(t)
			blocked := e.store.blockApplies()
			stop, nc := e.agent(true)
			spec, creds := e.spec("blob1")
			id, err := e.cp.Create(ctx, spec, creds)
			require.NoError(t, err)
			<-blocked // Apply is running
			if crash {
				nc.Close()
			}
			e.store.unblock()
			stop()
			stopped := time.Now()

			e.agent(true)
			require.Eventually(t, func() bool { _, a := e.store.snapshot(); return len(a) == 1 }, 20*time.Second, 10*time.Millisecond)
			took := time.Since(stopped)
			t.Logf("%s: applied by the next agent %s after the first stopped (AckWait %s)", name, took.Round(time.Millisecond), ackWait)
			if crash {
				assert.Greater(t, took, ackWait/2, "without a NAK the server waits out AckWait")
			} else {
				assert.Less(t, took, ackWait/2, "a NAK at shutdown hands the request over without waiting for AckWait")
			}
			e.settled()
			calls, applied := e.store.snapshot()
			assert.Equal(t, []string{id}, applied)
			assert.Equal(t, 2, calls)
		})
	}
}

func mustPub(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	return pub
}

// Requests published while no agent runs survive a control-plane restart on
// the same StoreDir, and are stored only as ciphertext.
func TestServerRestartKeepsUnackedRequests(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	ctx := ctxT(t)
	stopQueries, _ := e.agent(false) // answers pubkey, does not consume
	spec, creds := e.spec("blob1")
	id, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	stopQueries()

	_, js := devservertest.AdminConn(t, e.srv)
	s, err := js.Stream(ctx, protocol.RequestStream)
	require.NoError(t, err)
	raw, err := s.GetLastMsgForSubject(ctx, protocol.RequestSubject(cluster))
	require.NoError(t, err)
	assert.Contains(t, string(raw.Data), id)
	assert.NotContains(t, string(raw.Data), e.secret, "the stream holds ciphertext only")
	assert.Equal(t, id, raw.Header.Get("Nats-Msg-Id"))

	require.NoError(t, e.srv.Restart(ctx))
	e.agent(true)
	require.Eventually(t, func() bool { _, a := e.store.snapshot(); return len(a) == 1 }, 20*time.Second, 10*time.Millisecond)
	e.settled()
	_, applied := e.store.snapshot()
	assert.Equal(t, []string{id}, applied)
}

// Transient store errors are retried with growing delays; the request is
// applied once the store recovers, and the requests behind it wait.
func TestTransientErrorIsRetried(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	e.store.failNext(errors.New("etcdserver: leader changed"), errors.New("etcdserver: leader changed"))
	e.agent(true)
	ctx := ctxT(t)
	spec, creds := e.spec("blob1")
	start := time.Now()
	id1, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	id2, err := e.cp.Update(ctx, spec, creds)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, a := e.store.snapshot(); return len(a) == 2 }, 20*time.Second, 10*time.Millisecond)
	took := time.Since(start)
	calls, applied := e.store.snapshot()
	assert.Equal(t, []string{id1, id2}, applied, "order kept across retries")
	assert.Equal(t, 4, calls)
	// RetryBase 50ms: redeliveries after 50ms and 100ms
	assert.GreaterOrEqual(t, took, 150*time.Millisecond)
	t.Logf("two transient failures cost %s", took.Round(time.Millisecond))
	assert.Contains(t, e.logs.String(), `"outcome":"retry"`)
}

// A store that reports a duplicate it holds no record of did not store the
// request: acking it would lose it, so it is retried.
func TestDuplicateWithoutRecordIsRetried(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	e.store.lieNext(1)
	e.agent(true)
	spec, creds := e.spec("blob1")
	id, err := e.cp.Create(ctxT(t), spec, creds)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, a := e.store.snapshot(); return len(a) == 1 }, 20*time.Second, 10*time.Millisecond)
	calls, applied := e.store.snapshot()
	assert.Equal(t, []string{id}, applied)
	assert.Equal(t, 2, calls)
}

// Requests that retrying cannot fix are terminated (never redelivered) and
// reported as a Failed status event naming the problem; the queue moves on.
func TestPermanentFailures(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	e.agent(true)
	ctx := ctxT(t)
	spec, creds := e.spec("blob1")
	sealed, err := protocol.Seal(creds, mustPub(t, e.key))
	require.NoError(t, err)
	stranger, err := nkeys.CreateCurveKeys()
	require.NoError(t, err)
	sealedToStranger, err := protocol.Seal(creds, mustPub(t, stranger))
	require.NoError(t, err)

	base := func(id string) protocol.Request {
		return protocol.Request{Header: protocol.NewHeader(protocol.KindRequest), ID: id, Cluster: cluster,
			Op: protocol.OpCreate, Connection: spec, Credentials: sealed}
	}
	encode := func(r protocol.Request) []byte {
		b, err := json.Marshal(r)
		require.NoError(t, err)
		return b
	}
	tests := []struct {
		id, reason, mentions string
		data                 []byte
	}{
		{"bad-scope", intake.ReasonInvalidConnection, "scope", func() []byte {
			r := base("bad-scope")
			r.Connection.Scope = "Not_A_Namespace"
			return encode(r)
		}()},
		{"cred-in-clear", intake.ReasonInvalidConnection, "configurations[0].value", func() []byte {
			r := base("cred-in-clear")
			r.Connection.Configurations = []connection.Configuration{{Name: "AZURE_STORAGEBLOB_CONNECTIONSTRING", Credential: true, Value: e.secret}}
			return encode(r)
		}()},
		{"v2", intake.ReasonUnsupportedVersion, `"sc.v2"`, func() []byte {
			r := base("v2")
			r.APIVersion = "sc.v2"
			return encode(r)
		}()},
		{"huge", intake.ReasonTooLarge, "limit", func() []byte {
			r := base("huge")
			r.Connection.Annotations = map[string]string{"big": strings.Repeat("x", protocol.MaxMessageBytes)}
			return encode(r)
		}()},
		{"other-key", intake.ReasonCannotUnseal, "sealed to", func() []byte {
			r := base("other-key")
			r.Credentials = sealedToStranger
			return encode(r)
		}()},
		{"no-op", intake.ReasonInvalidRequest, "op:", func() []byte {
			r := base("no-op")
			r.Op = "patch"
			return encode(r)
		}()},
		{"delete-unknown", intake.ReasonNotFound, "not found", func() []byte {
			r := base("delete-unknown")
			r.Op, r.Credentials = protocol.OpDelete, nil
			return encode(r)
		}()},
	}
	events := e.statuses("blob1")
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			_, err := e.cp.PublishRaw(ctx, tt.id, tt.data, true)
			require.NoError(t, err)
			ev := await(t, events, "failure of "+tt.id, ofRequest(tt.id))
			assert.Equal(t, connection.PhaseFailed, ev.Phase)
			assert.Equal(t, tt.reason, ev.Reason)
			assert.Contains(t, ev.Message, tt.mentions)
			assert.NotContains(t, ev.Message, e.secret)
			e.settled()
		})
	}
	// terminated, not redelivered: the store never saw them, and a valid
	// request behind them goes through
	id, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	await(t, events, "accepted after failures", ofRequest(id))
	calls, applied := e.store.snapshot()
	assert.Equal(t, []string{id}, applied)
	assert.Equal(t, 2, calls, "only the delete of an unknown connection and the valid create reached the store")
	assert.NotContains(t, e.logs.String(), `"delivered":2`, "no rejected request was delivered twice")
}

// Everything the agent logged, every status event and every error in these
// flows is free of the credential value.
func TestCredentialValueNeverLeaks(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	e.store.failNext(errors.New("transient"))
	e.agent(true)
	ctx := ctxT(t)
	spec, creds := e.spec("blob1")
	var errs []error
	events := e.statuses("blob1")
	id, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	await(t, events, "accepted after a retry", ofRequest(id))

	// refused by the client's own validation
	bad := spec
	bad.Scope = "BAD"
	_, err = e.cp.Create(ctx, bad, creds)
	errs = append(errs, err)
	_, err = e.cp.Update(ctx, spec, connection.Credentials{"AZURE_STORAGEBLOB_CONNECTIONSTRING": e.secret, "AZURE_X_PASSWORD": e.secret})
	errs = append(errs, err)

	// refused by the agent after unsealing
	sealed, err := protocol.Seal(connection.Credentials{"AZURE_STORAGEBLOB_CONNECTIONSTRING": e.secret, "AZURE_X_PASSWORD": e.secret}, mustPub(t, e.key))
	require.NoError(t, err)
	raw, err := json.Marshal(protocol.Request{Header: protocol.NewHeader(protocol.KindRequest), ID: "extra-cred",
		Cluster: cluster, Op: protocol.OpUpdate, Connection: bad, Credentials: sealed})
	require.NoError(t, err)
	_, err = e.cp.PublishRaw(ctx, "extra-cred", raw, true)
	require.NoError(t, err)
	failed := await(t, events, "agent-side rejection", ofRequest("extra-cred"))
	assert.Contains(t, failed.Message, "credentials.AZURE_X_PASSWORD")
	e.settled()

	_, js := devservertest.AdminConn(t, e.srv)
	for _, stream := range []string{protocol.StatusStream, protocol.RequestStream} {
		s, err := js.Stream(ctx, stream)
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				continue
			}
			assert.NotContains(t, string(m.Data), e.secret, "%s #%d", stream, seq)
		}
	}
	for _, err := range errs {
		require.Error(t, err)
		assert.NotContains(t, err.Error(), e.secret)
	}
	logs := e.logs.String()
	require.Contains(t, logs, id, "the scan saw the agent's log lines")
	assert.NotContains(t, logs, e.secret)
}

// An Apply slower than AckWait is not redelivered to the other replica:
// the agent keeps telling the server it is working on it.
func TestSlowApplyIsKeptAlive(t *testing.T) {
	const ackWait = time.Second
	e := newEnv(t, devserver.Options{AckWait: ackWait})
	e.store.slowDown(3 * ackWait)
	keepAlive := func(o *intake.Options) { o.InProgressEvery = ackWait / 4 }
	e.agent(true, keepAlive)
	e.agent(true, keepAlive) // an idle second replica
	ctx := ctxT(t)
	spec, creds := e.spec("blob1")
	events := e.statuses("blob1")
	id, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	await(t, events, "accepted", ofRequest(id))
	e.settled()
	calls, applied := e.store.snapshot()
	assert.Equal(t, 1, calls, "never redelivered while in progress")
	assert.Equal(t, []string{id}, applied)
	assert.NotContains(t, e.logs.String(), `"delivered":2`)
}
