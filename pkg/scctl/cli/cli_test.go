package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

var errTestUnreachable = errors.New("agent not reachable")

// fakePlane records what scctl asks of the control plane and answers from
// canned values. It stands in for pkg/scctl/controlplane's client, above NATS;
// the over-NATS behaviour is tested in e2e_test.go against a real server.
type fakePlane struct {
	created, updated []connection.Spec
	creds            []connection.Credentials
	deleted          []string
	queries          []protocol.Query
	events           []protocol.StatusEvent // progress, then the final one
	answers          map[protocol.Verb]any
	queryErr         error
	closed           bool
	waited           []string // request ids
	heartbeat        protocol.Heartbeat
	heartbeatErr     error
}

func (f *fakePlane) Create(_ context.Context, s connection.Spec, c connection.Credentials) (string, error) {
	f.created, f.creds = append(f.created, s), append(f.creds, c)
	return "req-1", nil
}

func (f *fakePlane) Update(_ context.Context, s connection.Spec, c connection.Credentials) (string, error) {
	f.updated, f.creds = append(f.updated, s), append(f.creds, c)
	return "req-2", nil
}

func (f *fakePlane) Delete(_ context.Context, name string, deleteResources bool) (string, error) {
	f.deleted = append(f.deleted, fmt.Sprintf("%s/%t", name, deleteResources))
	return "req-3", nil
}

func (f *fakePlane) Wait(_ context.Context, _, requestID string, progress func(protocol.StatusEvent)) (protocol.StatusEvent, error) {
	f.waited = append(f.waited, requestID)
	for _, ev := range f.events[:len(f.events)-1] {
		progress(ev)
	}
	return f.events[len(f.events)-1], nil
}

func (f *fakePlane) Query(_ context.Context, q protocol.Query, out any) error {
	f.queries = append(f.queries, q)
	if f.queryErr != nil {
		return f.queryErr
	}
	b, err := json.Marshal(f.answers[q.Verb])
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func (f *fakePlane) LatestHeartbeat(context.Context) (protocol.Heartbeat, error) {
	return f.heartbeat, f.heartbeatErr
}

func (f *fakePlane) Close() { f.closed = true }

type run struct {
	code           int
	stdout, stderr string
	dialed         *DialOptions
}

func runApp(t *testing.T, plane *fakePlane, env map[string]string, stdin string, terminal bool, args ...string) run {
	t.Helper()
	var out, errOut bytes.Buffer
	var r run
	app := &App{
		Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader(stdin),
		Getenv:          func(k string) string { return env[k] },
		StdinIsTerminal: func() bool { return terminal },
		Unreachable:     func(err error) bool { return errors.Is(err, errTestUnreachable) },
		Dial: func(_ context.Context, o DialOptions) (ControlPlane, error) {
			r.dialed = &o
			if plane == nil {
				return nil, fmt.Errorf("no responders for cluster %q: %w", o.Cluster, errTestUnreachable)
			}
			return plane, nil
		},
	}
	r.code = app.Run(context.Background(), args)
	r.stdout, r.stderr = out.String(), errOut.String()
	return r
}

func TestUsageErrorsExit2WithoutDialling(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"unknown command":    {[]string{"connectoin"}, `unknown command "connectoin" for "scctl"`},
		"unknown subcommand": {[]string{"connection", "crate"}, `unknown command "crate" for "scctl connection"`},
		"no command":         {nil, "scctl needs a command"},
		"unknown flag":       {[]string{"connection", "list", "--clustr", "c1"}, "unknown flag: --clustr"},
		"bad output":         {[]string{"connection", "list", "--cluster", "c1", "-o", "xml"}, `-o/--output: "xml" is not one of table, json, yaml`},
		"no cluster":         {[]string{"connection", "list"}, "--cluster is required"},
		"bad cluster":        {[]string{"connection", "list", "--cluster", "C1.prod"}, `--cluster: "C1.prod" must be lowercase`},
		"bad timeout":        {[]string{"connection", "list", "--cluster", "c1", "--timeout", "soon"}, `invalid argument "soon" for "--timeout"`},
		"creds and user":     {[]string{"connection", "list", "--cluster", "c1", "--creds", "f", "--user", "u"}, "--creds and --user/--password are alternatives"},
		"show without name":  {[]string{"connection", "show", "--cluster", "c1"}, "--connection is required"},
		"show bad name":      {[]string{"connection", "show", "--cluster", "c1", "--connection", "a/b"}, "--connection: may contain only letters"},
		"create no target":   {[]string{"connection", "create", "--cluster", "c1", "--connection", "x"}, "accepts 1 arg(s), received 0"},
		"create bad spec":    {[]string{"connection", "create", "storage-blob", "--cluster", "c1", "--connection", "x", "--target-id", storageID}, "an auth type is required"},
		"delete needs yes":   {[]string{"connection", "delete", "--cluster", "c1", "--connection", "x"}, "--yes is required to delete without a terminal"},
		"stray argument":     {[]string{"connection", "list", "extra", "--cluster", "c1"}, `unknown command "extra" for "scctl connection list"`},
		"probe not a url":    {[]string{"probe", "localhost:8080/readyz"}, `URL: "localhost:8080/readyz" is not an http(s) URL`},
		"server bad cluster": {[]string{"server", "--cluster", "Bad.Cluster"}, `--cluster: "Bad.Cluster" must be lowercase`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			plane := &fakePlane{}
			r := runApp(t, plane, nil, "", false, tc.args...)
			assert.Equal(t, ExitUsage, r.code, r.stderr)
			assert.Nil(t, r.dialed, "a usage error must not reach the network")
			assert.Contains(t, r.stderr, "scctl: "+tc.want)
			assert.NotContains(t, r.stderr, "Usage:", "no usage dump")
			assert.NotContains(t, r.stderr, "goroutine", "no stack trace")
			assert.Empty(t, r.stdout)
		})
	}
}

func TestCreateWaitsAndReportsProgress(t *testing.T) {
	const secret = "cred-VALUE-4242"
	plane := &fakePlane{events: []protocol.StatusEvent{
		// history of an earlier request, retained in the stream: not progress
		{Connection: "mystorage", RequestID: "req-0", Phase: connection.PhaseFailed, Reason: "Old", Generation: 1},
		{Connection: "mystorage", RequestID: "req-1", Phase: connection.PhasePending, Reason: "Accepted", Generation: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{Connection: "mystorage", RequestID: "req-1", Phase: connection.PhaseRunning, Generation: 1, Time: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)},
		{Connection: "mystorage", RequestID: "req-1", Phase: connection.PhaseSucceeded, Generation: 1, Time: time.Date(2026, 1, 2, 3, 4, 7, 0, time.UTC),
			Resources: []connection.ResourceRef{{Kind: "Secret", Namespace: "team-a", Name: "sc-mystorage-secret"}}},
	}}
	env := map[string]string{"SCCTL_CLUSTER": "c1", "SCCTL_SERVER": "nats://cp:4222", "SCCTL_PASSWORD": "pw"}
	r := runApp(t, plane, env, "", false, "connection", "create", "storage-blob", "--connection", "mystorage",
		"--kube-namespace", "team-a", "--target-id", storageID, "--secret", "connection-string="+secret, "--user", "admin")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, &DialOptions{URL: "nats://cp:4222", User: "admin", Password: "pw", Cluster: "c1", Timeout: 2 * time.Minute}, r.dialed)
	require.Len(t, plane.created, 1)
	assert.Equal(t, secret, plane.creds[0]["AZURE_STORAGEBLOB_CONNECTIONSTRING"])
	assert.True(t, plane.closed)
	assert.Equal(t, "03:04:05 connection \"mystorage\": Pending (generation 1), Accepted\n"+
		"03:04:06 connection \"mystorage\": Running (generation 1)\n", r.stderr)
	assert.Equal(t, "connection \"mystorage\": Succeeded (generation 1)\n  Secret team-a/sc-mystorage-secret\n", r.stdout)
	assert.NotContains(t, r.stdout+r.stderr, secret)
}

func TestCreateJSONIsQuietOnStderr(t *testing.T) {
	plane := &fakePlane{events: []protocol.StatusEvent{
		{Connection: "c", Phase: connection.PhasePending},
		{Connection: "c", Phase: connection.PhaseSucceeded, RequestID: "req-1"},
	}}
	r := runApp(t, plane, nil, "", false, "connection", "create", "storage-blob", "--cluster", "c1", "-o", "json",
		"--connection", "c", "--target-id", storageID, "--secret", "connection-string=x")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Empty(t, r.stderr)
	var ev protocol.StatusEvent
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &ev))
	assert.Equal(t, connection.PhaseSucceeded, ev.Phase)
}

func TestCreateFailedExits1(t *testing.T) {
	plane := &fakePlane{events: []protocol.StatusEvent{{Connection: "c", Phase: connection.PhaseFailed, Reason: "SecretIsOwned",
		Message: "Secret team-a/sc-c-secret exists and is not managed by sc-extension"}}}
	r := runApp(t, plane, nil, "", false, "connection", "create", "storage-blob", "--cluster", "c1",
		"--connection", "c", "--target-id", storageID, "--secret", "connection-string=x")
	assert.Equal(t, ExitFailed, r.code)
	assert.Contains(t, r.stdout, `connection "c": Failed, SecretIsOwned`) // the outcome is still printed
	assert.Contains(t, r.stdout, "SecretIsOwned: Secret team-a/sc-c-secret exists")
	assert.Equal(t, "scctl: connection \"c\" failed: SecretIsOwned (details: kubectl -n sc-system logs job/sc-job)\n", r.stderr)
}

func TestNoWaitPrintsRequestID(t *testing.T) {
	plane := &fakePlane{}
	r := runApp(t, plane, nil, "", false, "connection", "create", "storage-blob", "--cluster", "c1", "--no-wait",
		"--connection", "c", "--target-id", storageID, "--secret", "connection-string=x")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "request req-1 sent for connection \"c\"")
	assert.Contains(t, r.stdout, "scctl connection wait --cluster c1 --connection c --request-id req-1")
}

func TestUnreachableExits3(t *testing.T) {
	r := runApp(t, nil, nil, "", false, "connection", "list", "--cluster", "c1")
	assert.Equal(t, ExitUnreachable, r.code)
	assert.Contains(t, r.stderr, `scctl: the agent of cluster "c1" is not reachable`)
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one sentence: %q", r.stderr)
}

func TestQueryErrors(t *testing.T) {
	plane := &fakePlane{queryErr: &protocol.ReplyError{Code: protocol.CodeNotFound, Message: `connection "nope" not found`}}
	r := runApp(t, plane, nil, "", false, "connection", "show", "--cluster", "c1", "--connection", "nope")
	assert.Equal(t, ExitFailed, r.code)
	assert.Equal(t, "scctl: connection \"nope\" not found\n", r.stderr)

	plane = &fakePlane{queryErr: fmt.Errorf("query: %w", &protocol.ReplyError{Code: protocol.CodeInvalid, Message: "name: is required"})}
	r = runApp(t, plane, nil, "", false, "connection", "show", "--cluster", "c1", "--connection", "x")
	assert.Equal(t, ExitUsage, r.code)
}

func TestUpdateStartsFromStoredSpec(t *testing.T) {
	stored, _, err := buildSpec(t, "storage-blob", nil, "--connection", "c", "--kube-namespace", "team-a",
		"--target-id", storageID, "--workload-identity", "client-id="+clientID)
	require.NoError(t, err)
	plane := &fakePlane{
		answers: map[protocol.Verb]any{protocol.VerbShow: protocol.ConnectionView{Spec: stored}},
		events:  []protocol.StatusEvent{{Connection: "c", Phase: connection.PhaseSucceeded}},
	}
	r := runApp(t, plane, nil, "", false, "connection", "update", "storage-blob", "--cluster", "c1",
		"--connection", "c", "--customized-keys", "AZURE_STORAGEBLOB_CLIENTID=CLIENT")
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Len(t, plane.updated, 1)
	got := plane.updated[0]
	assert.Equal(t, "team-a", got.Scope)
	assert.Equal(t, stored.AuthInfo, got.AuthInfo)
	assert.Equal(t, map[string]string{"AZURE_STORAGEBLOB_CLIENTID": "CLIENT"}, got.CustomizedKeys)
	assert.Equal(t, protocol.VerbShow, plane.queries[0].Verb)
}

func TestDeleteConfirmation(t *testing.T) {
	done := []protocol.StatusEvent{{Connection: "c", Phase: connection.PhaseDeleted}}
	plane := &fakePlane{events: done}
	r := runApp(t, plane, nil, "n\n", true, "connection", "delete", "--cluster", "c1", "--connection", "c")
	assert.Equal(t, ExitFailed, r.code)
	assert.Contains(t, r.stderr, `Delete connection "c" on cluster "c1" (rendered objects are kept)? [y/N]`)
	assert.Empty(t, plane.deleted)

	r = runApp(t, plane, nil, "yes\n", true, "connection", "delete", "--cluster", "c1", "--connection", "c", "--delete-resources")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, []string{"c/true"}, plane.deleted)
	assert.Contains(t, r.stdout, `connection "c": Deleted`)

	r = runApp(t, plane, nil, "", false, "connection", "delete", "--cluster", "c1", "--connection", "c", "--yes")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, []string{"c/true", "c/false"}, plane.deleted)
}

func TestValidateFailureExits1(t *testing.T) {
	plane := &fakePlane{answers: map[protocol.Verb]any{protocol.VerbValidate: protocol.ValidateResult{
		Connection: "c", Valid: false,
		Checks: []protocol.CheckResult{{Name: "secret-present", Result: "Failure", Description: "Secret team-a/sc-c-secret not found"}},
	}}}
	r := runApp(t, plane, nil, "", false, "connection", "validate", "--cluster", "c1", "--connection", "c")
	assert.Equal(t, ExitFailed, r.code)
	assert.Contains(t, r.stdout, "secret-present  Failure  Secret team-a/sc-c-secret not found")
	assert.Equal(t, "scctl: connection \"c\" is not valid\n", r.stderr)
}

func TestListSupportTypesNeedsNoCluster(t *testing.T) {
	r := runApp(t, nil, nil, "", false, "connection", "list-support-types")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Nil(t, r.dialed)
	assert.Contains(t, r.stdout, "storage-file")
	assert.Regexp(t, `keyvault\s+workloadIdentity, servicePrincipalSecret, keyvaultCsi`, r.stdout)
}

func TestListSortsAndFiltersByNamespace(t *testing.T) {
	plane := &fakePlane{answers: map[protocol.Verb]any{protocol.VerbList: []protocol.ConnectionView{
		{Spec: connection.Spec{Name: "zeta"}}, {Spec: connection.Spec{Name: "alpha"}},
	}}}
	r := runApp(t, plane, nil, "", false, "conn", "list", "--cluster", "c1", "--kube-namespace", "team-a")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, "team-a", plane.queries[0].Namespace)
	assert.Less(t, strings.Index(r.stdout, "alpha"), strings.Index(r.stdout, "zeta"))
}

func TestWaitDefaultsToLatestRequest(t *testing.T) {
	plane := &fakePlane{
		answers: map[protocol.Verb]any{protocol.VerbShow: protocol.ConnectionView{Status: connection.Status{LastRequestID: "req-9"}}},
		events:  []protocol.StatusEvent{{Connection: "c", RequestID: "req-9", Phase: connection.PhaseSucceeded}},
	}
	r := runApp(t, plane, nil, "", false, "connection", "wait", "--cluster", "c1", "--connection", "c")
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Len(t, plane.waited, 1)
	assert.Equal(t, "req-9", plane.waited[0])

	r = runApp(t, plane, nil, "", false, "connection", "wait", "--cluster", "c1", "--connection", "c", "--request-id", "req-5")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, []string{"req-9", "req-5"}, plane.waited)
	assert.Len(t, plane.queries, 1, "an explicit request id needs no show query")
}
