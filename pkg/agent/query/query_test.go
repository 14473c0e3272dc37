package query_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/pkg/agent/query"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

const cluster = "c1"

var errNotFound = errors.New("not found")

type reader struct {
	conns map[string]connection.Connection
	// slow makes every call wait for its context
	slow bool
}

func (r reader) List(ctx context.Context) ([]connection.Connection, error) {
	if r.slow {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var out []connection.Connection
	for _, c := range r.conns {
		out = append(out, c)
	}
	return out, nil
}

func (r reader) Get(_ context.Context, id string) (connection.Connection, error) {
	c, ok := r.conns[id]
	if !ok {
		return connection.Connection{}, errNotFound
	}
	return c, nil
}

func (r reader) Validate(_ context.Context, c connection.Connection) (protocol.ValidateResult, error) {
	return protocol.ValidateResult{Connection: c.Spec.Name, Valid: true,
		Checks: []protocol.CheckResult{{Name: "secret", Result: "Success", Description: "Secret exists"}}}, nil
}

func conn(name, ns string) connection.Connection {
	return connection.Connection{
		Spec: connection.Spec{Name: name, Scope: ns,
			TargetService: connection.TargetService{Type: "storage-blob", ID: "/x"},
			AuthInfo:      connection.AuthInfo{AuthType: catalog.AuthSecret},
			Configurations: []connection.Configuration{
				// a malformed record: a credential carrying a value must still list as ""
				{Name: "AZURE_STORAGEBLOB_CONNECTIONSTRING", Value: "cred-VALUE-leak"},
				{Name: "AZURE_STORAGEBLOB_RESOURCEENDPOINT", Value: "https://acct.blob.core.windows.net/"},
			},
			CustomizedKeys: map[string]string{"AZURE_STORAGEBLOB_RESOURCEENDPOINT": "BLOB_URL"}},
		Generation: 2,
		Deletion:   &connection.Deletion{RequestID: "d1"},
		Status:     connection.Status{Phase: connection.PhaseSucceeded, ObservedGeneration: 2},
	}
}

func serve(t *testing.T, r query.Reader, deadline time.Duration) *controlplane.Client {
	t.Helper()
	cp, _ := serveWith(t, query.Options{Reader: r, Deadline: deadline})
	return cp
}

// serveWith runs the query service on a development control plane with o
// (Cluster, PublicKey and a default IsNotFound filled in) and returns a
// control plane client and a raw admin NATS connection (scctl's user).
func serveWith(t testing.TB, o query.Options) (*controlplane.Client, *nats.Conn) {
	t.Helper()
	srv := devservertest.Start(t, devserver.Options{Clusters: []string{cluster}})
	nc, _ := devservertest.Agent(t, srv, cluster, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	o.Cluster, o.PublicKey = cluster, "XPUB"
	if o.IsNotFound == nil {
		o.IsNotFound = func(err error) bool { return errors.Is(err, errNotFound) }
	}
	go func() { done <- query.Serve(ctx, nc, o) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	cp := devservertest.ControlPlane(t, srv, cluster, 10*time.Second)
	require.Eventually(t, func() bool { _, err := cp.PublicKey(context.Background()); return err == nil },
		10*time.Second, 10*time.Millisecond)
	admin, _ := devservertest.AdminConn(t, srv)
	return cp, admin
}

func TestVerbs(t *testing.T) {
	r := reader{conns: map[string]connection.Connection{}}
	for _, c := range []connection.Connection{conn("zeta", "default"), conn("My_Blob", "apps"), conn("alpha", "default")} {
		r.conns[c.Spec.ID()] = c
	}
	cp := serve(t, r, time.Second)
	ctx := context.Background()

	var key protocol.PubKeyResult
	require.NoError(t, cp.Query(ctx, protocol.Query{Verb: protocol.VerbPubKey}, &key))
	assert.Equal(t, "XPUB", key.PublicKey)

	var list []protocol.ConnectionView
	require.NoError(t, cp.Query(ctx, protocol.Query{Verb: protocol.VerbList}, &list))
	require.Len(t, list, 3)
	assert.Equal(t, []string{"My_Blob", "alpha", "zeta"}, []string{list[0].Spec.Name, list[1].Spec.Name, list[2].Spec.Name})
	require.NoError(t, cp.Query(ctx, protocol.Query{Verb: protocol.VerbList, Namespace: "apps"}, &list))
	require.Len(t, list, 1)
	assert.Equal(t, connection.ObjectID("My_Blob"), list[0].ObjectID)
	assert.True(t, list[0].Deleting)
	require.NoError(t, cp.Query(ctx, protocol.Query{Verb: protocol.VerbList, Namespace: "none"}, &list))
	assert.Empty(t, list)

	var view protocol.ConnectionView
	require.NoError(t, cp.Query(ctx, protocol.Query{Verb: protocol.VerbShow, Connection: "My_Blob"}, &view))
	assert.Equal(t, int64(2), view.Generation)
	assert.Equal(t, connection.PhaseSucceeded, view.Status.Phase)

	var items []protocol.ConfigurationItem
	require.NoError(t, cp.Query(ctx, protocol.Query{Verb: protocol.VerbListConfiguration, Connection: "alpha"}, &items))
	assert.Equal(t, []protocol.ConfigurationItem{
		{Name: "AZURE_STORAGEBLOB_CONNECTIONSTRING", Value: "", Credential: true},
		{Name: "BLOB_URL", Value: "https://acct.blob.core.windows.net/"},
	}, items)

	var res protocol.ValidateResult
	require.NoError(t, cp.Query(ctx, protocol.Query{Verb: protocol.VerbValidate, Connection: "alpha"}, &res))
	assert.True(t, res.Valid)
	assert.Equal(t, "alpha", res.Connection)
}

func TestErrorCodes(t *testing.T) {
	cp := serve(t, reader{conns: map[string]connection.Connection{}}, time.Second)
	ctx := context.Background()
	code := func(q protocol.Query) string {
		err := cp.Query(ctx, q, nil)
		var re *protocol.ReplyError
		require.True(t, errors.As(err, &re), "%v", err)
		return re.Code
	}
	assert.Equal(t, protocol.CodeNotFound, code(protocol.Query{Verb: protocol.VerbShow, Connection: "nope"}))
	assert.Equal(t, protocol.CodeNotFound, code(protocol.Query{Verb: protocol.VerbValidate, Connection: "nope"}))
	assert.Equal(t, protocol.CodeInvalid, code(protocol.Query{Verb: protocol.VerbShow, Connection: "bad name"}))
	assert.Equal(t, protocol.CodeInvalid, code(protocol.Query{Verb: protocol.VerbShow}))
	assert.Equal(t, protocol.CodeInvalid, code(protocol.Query{Verb: "explode"}))
}

// A reader that never returns still gets the requester an answer, at the
// service's deadline, well before the client would give up.
func TestSlowReaderAnsweredAtDeadline(t *testing.T) {
	const deadline = 200 * time.Millisecond
	cp := serve(t, reader{slow: true}, deadline)
	begin := time.Now()
	err := cp.Query(context.Background(), protocol.Query{Verb: protocol.VerbList}, nil)
	took := time.Since(begin)
	var re *protocol.ReplyError
	require.True(t, errors.As(err, &re), "%v", err)
	assert.Equal(t, protocol.CodeInternal, re.Code)
	assert.Contains(t, re.Message, "did not complete")
	assert.GreaterOrEqual(t, took, deadline)
	assert.Less(t, took, 3*time.Second, "before the client's timeout")
}

func TestConfigurationHidesCredentials(t *testing.T) {
	items := query.Configuration(connection.Spec{Configurations: []connection.Configuration{
		{Name: "AZURE_REDIS_PASSWORD", Value: "cred-VALUE-x"},
		{Name: "AZURE_REDIS_HOST", Value: "h"},
		{Name: "CUSTOM", Value: "v", Credential: true},
	}})
	for _, it := range items {
		if it.Name != "AZURE_REDIS_HOST" {
			assert.True(t, it.Credential, it.Name)
			assert.Empty(t, it.Value, it.Name)
		}
	}
}

// list-configuration names the workloads a bound connection's keys reach;
// an unbound connection's items are as they were (no new fields on the wire).
func TestConfigurationNamesBoundWorkloads(t *testing.T) {
	spec := connection.Spec{
		Configurations: []connection.Configuration{
			{Name: "AZURE_REDIS_HOST", Value: "h"},
			{Name: "AZURE_REDIS_PASSWORD", Credential: true},
		},
		CustomizedKeys: map[string]string{"AZURE_REDIS_HOST": "REDIS_HOST"},
	}
	unbound, err := json.Marshal(query.Configuration(spec))
	require.NoError(t, err)
	assert.JSONEq(t, `[{"name":"REDIS_HOST","value":"h"},{"name":"AZURE_REDIS_PASSWORD","value":"","credential":true}]`, string(unbound))

	workloads := []connection.Workload{{Kind: connection.WorkloadDeployment, Name: "app", Containers: []string{"web"}},
		{Kind: connection.WorkloadCronJob, Name: "nightly"}}
	spec.Binding = &connection.Binding{Workloads: workloads}
	items := query.Configuration(spec)
	require.Len(t, items, 2)
	for _, it := range items {
		assert.Equal(t, workloads, it.Workloads, it.Name)
		assert.Equal(t, connection.BindingEnv, it.BindingMode, "the default mode is spelled out")
	}
	assert.Empty(t, items[1].Value, "binding changes nothing about hiding credentials")

	spec.Binding.Mode = connection.BindingVolume
	assert.Equal(t, connection.BindingVolume, query.Configuration(spec)[0].BindingMode)
}
