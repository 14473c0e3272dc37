package devserver_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// confined is a raw connection as cluster's user that records every
// asynchronous permission violation the server reports.
type confined struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func dialAs(t *testing.T, srv *devserver.Server, cluster string) *confined {
	t.Helper()
	cred, ok := srv.Cluster(cluster)
	require.True(t, ok)
	c := &confined{errs: make(chan error, 64)}
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(cred.User, cred.Password),
		nats.CustomInboxPrefix(protocol.InboxPrefix(cluster)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.errs <- err }))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	c.nc = nc
	c.js, err = jetstream.New(nc)
	require.NoError(t, err)
	return c
}

// denied waits for the server's permission violation naming subject.
func (c *confined) denied(t *testing.T, op, subject string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-c.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), op) && strings.Contains(err.Error(), `"`+subject+`"`) {
				return
			}
		case <-deadline:
			t.Fatalf("no permission violation for %s %q", op, subject)
		}
	}
}

func short(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClusterUserIsConfinedToItsOwnSubjects(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"a", "b"}})
	a := dialAs(t, srv, "a")

	t.Run("cannot subscribe to b's subjects or anyone's inbox", func(t *testing.T) {
		for _, subj := range []string{
			protocol.RequestSubject("b"), protocol.QuerySubjectAll("b"), protocol.QuerySubject("b", protocol.VerbPubKey),
			protocol.StatusSubjectAll("b"), protocol.HeartbeatSubject("b"), protocol.InboxPrefix("b") + ".>",
			"_INBOX.>", "$JS.ACK.SC_REQUESTS.agent-b.>", ">",
		} {
			_, err := a.nc.Subscribe(subj, func(*nats.Msg) {})
			require.NoError(t, err)
			a.denied(t, "Subscription", subj)
		}
	})

	t.Run("cannot publish requests, b's status, nor subjects of its own it never uses", func(t *testing.T) {
		for _, subj := range []string{protocol.RequestSubject("a"), protocol.RequestSubject("b"),
			protocol.StatusSubject("b", "x"), protocol.HeartbeatSubject("b"), "$JS.API.STREAM.INFO." + protocol.StatusStream,
			protocol.StatusSubject("a", "x.y"), "sc.v1.a.status", "sc.v1.a.other"} {
			require.NoError(t, a.nc.Publish(subj, []byte(`{}`)))
			a.denied(t, "Publish", subj)
		}
	})

	t.Run("cannot use or create b's consumer, nor create any", func(t *testing.T) {
		_, err := a.js.Consumer(short(t), protocol.RequestStream, protocol.ConsumerName("b"))
		require.Error(t, err)
		a.denied(t, "Publish", "$JS.API.CONSUMER.INFO.SC_REQUESTS.agent-b")

		cfg := natsbus.ConsumerConfig("b", 0)
		_, err = a.js.CreateOrUpdateConsumer(short(t), protocol.RequestStream, cfg)
		require.Error(t, err)
		a.denied(t, "Publish", "$JS.API.CONSUMER.CREATE.SC_REQUESTS.agent-b.sc.v1.b.requests")

		// not even its own: a create could carry a push deliver subject
		_, err = a.js.CreateOrUpdateConsumer(short(t), protocol.RequestStream, natsbus.ConsumerConfig("a", time.Minute))
		require.Error(t, err)
		a.denied(t, "Publish", "$JS.API.CONSUMER.CREATE.SC_REQUESTS.agent-a.sc.v1.a.requests")

		require.NoError(t, a.nc.Publish("$JS.API.CONSUMER.MSG.NEXT.SC_REQUESTS.agent-b", []byte(`{"batch":1}`)))
		a.denied(t, "Publish", "$JS.API.CONSUMER.MSG.NEXT.SC_REQUESTS.agent-b")
	})

	t.Run("cannot answer b's queries", func(t *testing.T) {
		_, err := a.nc.QueueSubscribe(protocol.QuerySubjectAll("b"), "agent", func(m *nats.Msg) { _ = m.Respond([]byte("forged")) })
		require.NoError(t, err)
		a.denied(t, "Subscription", protocol.QuerySubjectAll("b"))
		cp := devservertest.ControlPlane(t, srv, "b", 2*time.Second)
		_, err = cp.PublicKey(context.Background())
		require.ErrorIs(t, err, controlplane.ErrAgentUnreachable, "b's client sees no responder, never a's forged answer")
	})

	t.Run("can do its own work", func(t *testing.T) {
		own := dialAs(t, srv, "a")
		cons, err := own.js.Consumer(short(t), protocol.RequestStream, protocol.ConsumerName("a"))
		require.NoError(t, err)
		assert.Equal(t, protocol.RequestSubject("a"), cons.CachedInfo().Config.FilterSubject)

		cp := devservertest.ControlPlane(t, srv, "a", 2*time.Second)
		_, err = cp.PublishRaw(context.Background(), "r1", []byte(`{"hello":1}`), true)
		require.NoError(t, err)
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		require.NoError(t, err)
		var got int
		for m := range batch.Messages() {
			require.NoError(t, m.DoubleAck(short(t)))
			got++
		}
		require.NoError(t, batch.Error())
		assert.Equal(t, 1, got)

		_, err = own.js.Publish(short(t), protocol.StatusSubject("a", "conn1"), []byte(`{}`))
		require.NoError(t, err, "status publish with a JetStream ack")
		require.NoError(t, own.nc.Publish(protocol.HeartbeatSubject("a"), []byte(`{}`)))
		require.NoError(t, own.nc.Flush())
		select {
		case err := <-own.errs:
			t.Fatalf("own work hit %v", err)
		default:
		}
	})
}
