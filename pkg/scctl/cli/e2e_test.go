package cli

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/memstore"
	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/agent/query"
	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// These tests run scctl with its production wiring (pkg/scctl/controlplane) over a
// real embedded NATS server (pkg/scctl/devserver). The agent side is the real
// pkg/agent/intake and pkg/agent/query; only the Kubernetes store below them, and
// sc-job's final status, are stand-ins.

// agentStore is the stand-in for pkg/kube/store (internal/testkit/memstore)
// plus a "job" that reports every accepted change as done, as sc-job would.
// It is also intake's status publisher, so that the job's outcome follows
// intake's Pending event as it does in a cluster.
type agentStore struct {
	*memstore.Store
	cluster string
	status  *statuspub.Publisher
	mu      sync.Mutex
	outcome map[string]protocol.StatusEvent // by request id, sent after its Pending
}

func (s *agentStore) Publish(ctx context.Context, ev protocol.StatusEvent) error {
	if err := s.status.Publish(ctx, ev); err != nil {
		return err
	}
	s.mu.Lock()
	next, ok := s.outcome[ev.RequestID]
	delete(s.outcome, ev.RequestID)
	s.mu.Unlock()
	if ok && ev.Phase == connection.PhasePending {
		return s.status.Publish(ctx, next)
	}
	return nil
}

// Apply stores the change and plays sc-job: a deletion removes the
// connection, anything else is rendered.
func (s *agentStore) Apply(ctx context.Context, ch connection.Change) (connection.Connection, bool, error) {
	c, applied, err := s.Store.Apply(ctx, ch)
	if err != nil || !applied {
		return c, applied, err
	}
	id := c.Spec.ID()
	var ev protocol.StatusEvent
	if ch.Delete {
		s.Remove(id)
		ev = statuspub.Deleted(s.cluster, c)
	} else {
		done := c
		done.Status = connection.Status{Phase: connection.PhaseSucceeded, LastRequestID: ch.RequestID, ObservedGeneration: c.Generation,
			Resources: []connection.ResourceRef{{Kind: "Secret", Namespace: c.Spec.Scope, Name: connection.SecretName(id)}}}
		ev = statuspub.FromConnection(s.cluster, done)
	}
	s.mu.Lock()
	s.outcome[ch.RequestID] = ev
	s.mu.Unlock()
	return c, true, nil
}

func (s *agentStore) Validate(_ context.Context, c connection.Connection) (protocol.ValidateResult, error) {
	return protocol.ValidateResult{Connection: c.Spec.Name, Valid: true,
		Checks: []protocol.CheckResult{{Name: "secret-present", Result: "Success", Description: "present"}}}, nil
}

// startAgent runs the real query responder and request intake for c1 until
// the test ends.
func startAgent(t *testing.T, srv *devserver.Server) *agentStore {
	t.Helper()
	nc, js := devservertest.Agent(t, srv, "c1", zerolog.Nop())
	kp, err := nkeys.CreateCurveKeys()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	store := &agentStore{Store: memstore.New(), cluster: "c1", status: statuspub.New(js, "c1"), outcome: map[string]protocol.StatusEvent{}}
	isNotFound := record.IsNotFound
	in, err := intake.New(js, intake.Options{Cluster: "c1", Key: kp, Store: store, Status: store, IsNotFound: isNotFound})
	require.NoError(t, err)
	// query.Serve needs a deadline on its context (its FlushWithContext
	// refuses one without); the test's cancel ends it long before.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = query.Serve(ctx, nc, query.Options{Cluster: "c1", Reader: store, PublicKey: pub, IsNotFound: isNotFound})
	}()
	go func() { defer wg.Done(); _ = in.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return store
}

// runReal runs scctl with production wiring against srv as the admin user.
func runReal(t *testing.T, srv *devserver.Server, args ...string) run {
	t.Helper()
	admin := srv.Admin()
	env := map[string]string{"SCCTL_SERVER": srv.ClientURL(), "SCCTL_USER": admin.User, "SCCTL_PASSWORD": admin.Password, "SCCTL_CLUSTER": "c1"}
	var out, errOut bytes.Buffer
	app := &App{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	code := app.Run(context.Background(), args)
	return run{code: code, stdout: out.String(), stderr: errOut.String()}
}

func TestOverNATSNoAgentFailsFast(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	const timeout = 20 * time.Second
	for _, args := range [][]string{
		{"connection", "list"},
		{"connection", "show", "--connection", "x"},
		{"connection", "create", "storage-blob", "--connection", "x", "--target-id", storageID, "--secret", "connection-string=cred-VALUE-1"},
	} {
		start := time.Now()
		r := runReal(t, srv, append(args, "--timeout", timeout.String())...)
		elapsed := time.Since(start)
		assert.Equal(t, ExitUnreachable, r.code, "%v: %s", args, r.stderr)
		assert.Less(t, elapsed, timeout/4, "%v must fail fast, not wait for --timeout", args)
		assert.Contains(t, r.stderr, `scctl: the agent of cluster "c1" is not reachable`)
		assert.NotContains(t, r.stderr, "cred-VALUE")
	}
}

func TestOverNATSLifecycle(t *testing.T) {
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{"c1"}})
	store := startAgent(t, srv)
	const secret = "DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey=cred-VALUE-e2e==;EndpointSuffix=core.windows.net"
	var printed bytes.Buffer
	record := func(r run) run { printed.WriteString(r.stdout + r.stderr); return r }

	// The responder subscribes asynchronously; wait until it answers.
	require.Eventually(t, func() bool { return runReal(t, srv, "connection", "list").code == ExitOK },
		10*time.Second, 20*time.Millisecond)

	r := record(runReal(t, srv, "connection", "create", "storage-blob", "--connection", "My_Storage",
		"--kube-namespace", "team-a", "--target-id", storageID, "--secret", "connection-string="+secret))
	require.Equal(t, ExitOK, r.code, r.stderr)
	id := connection.ObjectID("My_Storage")
	assert.Contains(t, r.stdout, `connection "My_Storage": Succeeded (generation 1)`)
	assert.Contains(t, r.stdout, "Secret team-a/sc-"+id+"-secret")
	assert.Regexp(t, `^\d\d:\d\d:\d\d connection "My_Storage": Pending \(generation 1\), Accepted`, r.stderr, "progress on stderr")
	assert.NotContains(t, r.stderr, "Succeeded", "the outcome is printed once, on stdout")
	assert.Equal(t, connection.Credentials{"AZURE_STORAGEBLOB_CONNECTIONSTRING": secret}, store.Credentials(id),
		"the agent unsealed exactly what was given")

	r = record(runReal(t, srv, "connection", "list"))
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Regexp(t, `My_Storage\s+team-a\s+storage-blob\s+secret\s+none\s+Pending`, r.stdout)

	r = record(runReal(t, srv, "connection", "list-configuration", "--connection", "My_Storage"))
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "AZURE_STORAGEBLOB_CONNECTIONSTRING  <hidden>")

	r = record(runReal(t, srv, "connection", "show", "--connection", "nope"))
	assert.Equal(t, ExitFailed, r.code)

	r = record(runReal(t, srv, "-o", "json", "connection", "update", "storage-blob", "--connection", "My_Storage",
		"--secret", "connection-string="+secret, "--customized-keys", "AZURE_STORAGEBLOB_CONNECTIONSTRING=BLOB"))
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Empty(t, r.stderr, "-o json keeps stderr quiet")
	assert.Contains(t, r.stdout, `"phase": "Succeeded"`)
	assert.Contains(t, r.stdout, `"generation": 2`)

	r = record(runReal(t, srv, "connection", "delete", "--connection", "My_Storage", "--yes"))
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, `connection "My_Storage": Deleted`)

	assert.NotContains(t, printed.String(), "cred-VALUE-e2e")
}
