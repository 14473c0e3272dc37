package controlplane_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// pager answers list queries from canned answers keyed by the continue
// token, through JSON as the wire would, and records the queries.
type pager struct {
	answers map[string]any
	errs    map[string]error
	queries []protocol.Query
}

func (p *pager) Query(_ context.Context, q protocol.Query, out any) error {
	p.queries = append(p.queries, q)
	if err := p.errs[q.Continue]; err != nil {
		return err
	}
	b, err := json.Marshal(p.answers[q.Continue])
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func view(name string) protocol.ConnectionView {
	return protocol.ConnectionView{Spec: connection.Spec{Name: name}, ObjectID: connection.ObjectID(name)}
}

func TestListFollowsEveryPage(t *testing.T) {
	p := &pager{answers: map[string]any{
		"":   protocol.ListPage{Items: []protocol.ConnectionView{view("a"), view("b")}, Continue: "t1"},
		"t1": protocol.ListPage{Errors: []protocol.RecordError{{ObjectID: "c", Reason: protocol.RecordCorrupt, Message: "m"}}, Continue: "t2"},
		"t2": protocol.ListPage{Items: []protocol.ConnectionView{view("d")}},
	}}
	l, err := controlplane.List(context.Background(), p, controlplane.ListOptions{Namespace: "ns", Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, []protocol.ConnectionView{view("a"), view("b"), view("d")}, l.Items)
	assert.Equal(t, []protocol.RecordError{{ObjectID: "c", Reason: protocol.RecordCorrupt, Message: "m"}}, l.Errors)
	assert.Equal(t, 3, l.Pages)
	require.Len(t, p.queries, 3)
	for i, tok := range []string{"", "t1", "t2"} {
		q := p.queries[i]
		assert.Equal(t, protocol.VerbList, q.Verb)
		assert.Equal(t, "ns", q.Namespace)
		assert.Equal(t, 2, q.Limit)
		assert.Equal(t, tok, q.Continue)
		assert.Equal(t, protocol.NewHeader(protocol.KindQuery), q.Header)
	}
}

// An agent of v0.1.0 ignores the limit and answers the whole list as a
// bare array: one page, and the walk ends.
func TestListOfAV010AgentIsOnePage(t *testing.T) {
	p := &pager{answers: map[string]any{"": []protocol.ConnectionView{view("a"), view("b")}}}
	l, err := controlplane.List(context.Background(), p, controlplane.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, l.Items, 2)
	assert.Equal(t, 1, l.Pages)
	assert.Equal(t, protocol.DefaultPageSize, p.queries[0].Limit, "0 asks for the default page size")
}

func TestListStopsOnARepeatedTokenOrAFailedPage(t *testing.T) {
	loop := &pager{answers: map[string]any{
		"":  protocol.ListPage{Items: []protocol.ConnectionView{view("a")}, Continue: "t"},
		"t": protocol.ListPage{Items: []protocol.ConnectionView{view("a")}, Continue: "t"},
	}}
	_, err := controlplane.List(context.Background(), loop, controlplane.ListOptions{})
	require.ErrorIs(t, err, controlplane.ErrPaging)
	assert.Len(t, loop.queries, 2)

	boom := errors.New("boom")
	failing := &pager{answers: map[string]any{"": protocol.ListPage{Items: []protocol.ConnectionView{view("a")}, Continue: "t"}},
		errs: map[string]error{"t": boom}}
	l, err := controlplane.List(context.Background(), failing, controlplane.ListOptions{})
	require.ErrorIs(t, err, boom)
	assert.Contains(t, err.Error(), "page 2")
	assert.Len(t, l.Items, 1, "what was read is returned with the error")
}
