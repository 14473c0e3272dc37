package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// pagedPlane answers list with canned pages keyed by the continue token.
type pagedPlane struct {
	*fakePlane
	pages map[string]protocol.ListPage
}

func (p pagedPlane) Query(ctx context.Context, q protocol.Query, out any) error {
	if q.Verb != protocol.VerbList {
		return p.fakePlane.Query(ctx, q, out)
	}
	p.queries = append(p.queries, q)
	b, err := json.Marshal(p.pages[q.Continue])
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func runPaged(t *testing.T, pages map[string]protocol.ListPage, args ...string) (run, *fakePlane) {
	t.Helper()
	plane := &fakePlane{}
	var out, errOut strings.Builder
	app := &App{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" },
		Dial: func(context.Context, DialOptions) (ControlPlane, error) { return pagedPlane{plane, pages}, nil }}
	code := app.Run(context.Background(), append([]string{"connection", "list", "--cluster", "c1"}, args...))
	return run{code: code, stdout: out.String(), stderr: errOut.String()}, plane
}

func named(names ...string) []protocol.ConnectionView {
	out := make([]protocol.ConnectionView, len(names))
	for i, n := range names {
		out[i] = protocol.ConnectionView{Spec: connection.Spec{Name: n, Scope: "team-a"}, Status: connection.Status{Phase: connection.PhaseSucceeded}}
	}
	return out
}

// list prints every page, asks for the page size --limit names, and
// filters by namespace on the agent.
func TestListPrintsEveryPage(t *testing.T) {
	pages := map[string]protocol.ListPage{
		"":   {Items: named("a", "b"), Continue: "t1"},
		"t1": {Items: named("c", "d"), Continue: "t2"},
		"t2": {Items: named("e")},
	}
	r, plane := runPaged(t, pages, "--limit", "2", "--kube-namespace", "team-a")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Empty(t, r.stderr)
	require.Len(t, plane.queries, 3)
	for _, q := range plane.queries {
		assert.Equal(t, 2, q.Limit)
		assert.Equal(t, "team-a", q.Namespace)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 6, r.stdout)
	for i, n := range []string{"a", "b", "c", "d", "e"} {
		assert.True(t, strings.HasPrefix(lines[i+1], n+" "), lines[i+1])
	}

	r, plane = runPaged(t, pages, "-o", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, protocol.DefaultPageSize, plane.queries[0].Limit)
	var views []protocol.ConnectionView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &views), "JSON output is the array it always was")
	assert.Len(t, views, 5)
}

// Records the agent cannot read: the list on stdout holds every other
// connection, stderr names each unreadable record with its reason, and the
// exit code is 1 so that a script notices the list is incomplete.
func TestListReportsUnreadableRecordsAfterTheTable(t *testing.T) {
	pages := map[string]protocol.ListPage{
		"": {Items: named("a"), Continue: "t1",
			Errors: []protocol.RecordError{{ObjectID: "broken", Reason: protocol.RecordCorrupt, Message: "configmap sc-conn-broken: spec: bad"}}},
		"t1": {Items: named("z"),
			Errors: []protocol.RecordError{{ObjectID: "future", Reason: protocol.RecordUnsupportedVersion, Message: "newer schema"}}},
	}
	for _, format := range []string{"table", "json"} {
		r, _ := runPaged(t, pages, "-o", format)
		assert.Equal(t, ExitFailed, r.code)
		assert.Contains(t, r.stdout, `a`)
		assert.Contains(t, r.stdout, `z`)
		assert.NotContains(t, r.stdout, "broken", "stdout is the list alone")
		assert.Contains(t, r.stderr, "2 connection record(s) could not be read")
		assert.Contains(t, r.stderr, "broken: RecordCorrupt: configmap sc-conn-broken: spec: bad")
		assert.Contains(t, r.stderr, "future: UnsupportedVersion: newer schema")
	}
}

func TestListRejectsANegativeLimit(t *testing.T) {
	r, plane := runPaged(t, nil, "--limit", "-1")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "--limit")
	assert.Empty(t, plane.queries)
}
