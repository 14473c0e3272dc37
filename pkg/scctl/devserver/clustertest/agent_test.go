// Package clustertest proves the control plane's topologies end to end over
// real embedded NATS servers: a 3-node JetStream cluster that loses nodes
// while requests flow, and an edge cluster behind a leaf node. The agent
// side is the real pkg/agent/intake; only the Kubernetes store (memstore)
// and sc-job's final status are stand-ins.
package clustertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/memstore"
	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/agent/query"
	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

const cluster = "c1"

// agent is the real intake and query service over memstore, with a stand-in for sc-job and
// statuswatch: every stored change is reported Succeeded by a worker of
// its own that retries until the event is stored, as statuswatch's
// controller does from the record, independently of intake's Pending
// (which is best effort: statuswatch reports the same Pending from the
// record).
type agent struct {
	*memstore.Store
	nc     *nats.Conn
	key    nkeys.KeyPair
	status *statuspub.Publisher
	final  chan protocol.StatusEvent
}

// startAgent connects to urls (comma-separated) as cluster's user and runs
// the intake until the test ends.
func startAgent(t *testing.T, urls, user, password string, log zerolog.Logger) *agent {
	t.Helper()
	nc, js, err := natsbus.Connect(context.Background(), natsbus.Options{
		URL: urls, Cluster: cluster, User: user, Password: password, Name: "agent-" + cluster,
		Logger: log, MaxReconnectWait: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	kp, err := nkeys.CreateCurveKeys()
	require.NoError(t, err)
	a := &agent{Store: memstore.New(), nc: nc, key: kp, final: make(chan protocol.StatusEvent, 4096),
		status: statuspub.New(js, cluster, statuspub.WithTimeout(time.Second), statuspub.WithLogger(log))}
	in, err := intake.New(js, intake.Options{Cluster: cluster, Key: kp, Store: a, Status: a.status, IsNotFound: record.IsNotFound,
		Logger: log, InProgressEvery: time.Second, RetryBase: 100 * time.Millisecond, RetryMax: time.Second})
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	// query.Serve needs a deadline on its context; the test's cancel ends
	// it long before.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	var wg sync.WaitGroup
	wg.Go(func() { _ = in.Run(ctx) })
	wg.Go(func() {
		_ = query.Serve(ctx, nc, query.Options{Cluster: cluster, Reader: a, PublicKey: pub, IsNotFound: record.IsNotFound, Logger: log})
	})
	wg.Go(func() { a.reportFinal(ctx, log) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return a
}

// reportFinal publishes each final event until it is stored.
func (a *agent) reportFinal(ctx context.Context, log zerolog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-a.final:
			for a.status.Publish(ctx, ev) != nil && ctx.Err() == nil {
				log.Info().Str("requestId", ev.RequestID).Msg("final status not stored yet; again")
			}
		}
	}
}

func (a *agent) Apply(ctx context.Context, ch connection.Change) (connection.Connection, bool, error) {
	c, applied, err := a.Store.Apply(ctx, ch)
	if err != nil || !applied {
		return c, applied, err
	}
	done := c
	done.Status = connection.Status{Phase: connection.PhaseSucceeded, LastRequestID: ch.RequestID, ObservedGeneration: c.Generation}
	a.final <- statuspub.FromConnection(cluster, done)
	return c, true, nil
}

// Validate answers the validate query as a healthy cluster would.
func (a *agent) Validate(_ context.Context, c connection.Connection) (protocol.ValidateResult, error) {
	return protocol.ValidateResult{Connection: c.Spec.Name, Valid: true}, nil
}

// publicKey is what the agent's query service would answer to pubkey.
func (a *agent) publicKey(t *testing.T) string {
	pub, err := a.key.PublicKey()
	require.NoError(t, err)
	return pub
}

// createRequest is a create of connection name with a sealed secret, as
// controlplane.Client.Create builds it; the test keeps it to publish again
// with the same id, as a control plane that did not hear the ack must.
func createRequest(t *testing.T, name, agentKey string) protocol.Request {
	t.Helper()
	const key = "AZURE_STORAGEBLOB_CONNECTIONSTRING"
	spec := connection.Spec{
		Name: name, Scope: "default",
		TargetService:  connection.TargetService{Type: "storage-blob", ID: "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"},
		AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
		ClientType:     "none",
		Configurations: []connection.Configuration{{Name: key, Credential: true}},
	}
	creds := connection.Credentials{key: "cred-VALUE-" + name}
	require.NoError(t, connection.Validate(spec, creds))
	sealed, err := protocol.Seal(creds, agentKey)
	require.NoError(t, err)
	return protocol.Request{
		Header: protocol.NewHeader(protocol.KindRequest), ID: controlplane.NewRequestID(), Cluster: cluster,
		Op: protocol.OpCreate, SentAt: time.Now().UTC(), Connection: spec, Credentials: sealed,
	}
}

// publishUntilStored publishes req until the stream acknowledges it,
// under its own id each time: the stream's duplicate window and the
// agent's memory of applied ids make the retries harmless. It returns how
// many attempts failed.
func publishUntilStored(t *testing.T, cp *controlplane.Client, req protocol.Request, deadline time.Time) int {
	t.Helper()
	failed := 0
	for {
		_, err := cp.Publish(context.Background(), req)
		if err == nil {
			return failed
		}
		failed++
		require.True(t, time.Now().Before(deadline), "request %s not stored by the deadline: %v", req.ID, err)
	}
}

// waitFinal waits for req's terminal status; safe from any goroutine.
func waitFinal(cp *controlplane.Client, req protocol.Request, timeout time.Duration) (protocol.StatusEvent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return cp.Wait(ctx, req.Connection.Name, req.ID, nil)
}

// consumerDrained polls until the agent's consumer holds nothing: every
// request was delivered and acknowledged.
func consumerDrained(t *testing.T, js jetstream.JetStream, timeout time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cons, err := js.Consumer(ctx, protocol.RequestStream, protocol.ConsumerName(cluster))
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, timeout, 20*time.Millisecond, "every request acknowledged")
}
