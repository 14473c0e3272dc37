package protocol

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// A query without paging is byte for byte what scctl v0.1.0 sends, so an
// agent of v0.1.0 reads today's unpaged queries, and today's agent tells
// v0.1.0's apart by the keys being absent.
func TestUnpagedQueryKeepsTheV010Shape(t *testing.T) {
	b, err := Encode(Query{Header: NewHeader(KindQuery), Verb: VerbList, Namespace: "apps"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"apiVersion":"sc.v1","kind":"Query","verb":"list","namespace":"apps"}`, string(b))

	var q Query
	require.NoError(t, Decode([]byte(`{"apiVersion":"sc.v1","kind":"Query","verb":"list"}`), KindQuery, &q))
	assert.False(t, q.Paged())
	for _, paged := range []Query{{Limit: 5}, {Continue: "x"}} {
		assert.True(t, paged.Paged())
	}
}

// scctl reads a page, and also the bare array an agent of v0.1.0 answers
// with: that is the whole list in one page.
func TestListPageReadsBothShapes(t *testing.T) {
	var p ListPage
	require.NoError(t, json.Unmarshal([]byte(` [{"spec":{"name":"a","scope":"s"},"objectId":"a","generation":1,"status":{"phase":"Succeeded"}}]`), &p))
	require.Len(t, p.Items, 1)
	assert.Equal(t, "a", p.Items[0].Spec.Name)
	assert.Empty(t, p.Continue)

	require.NoError(t, json.Unmarshal([]byte(`{"items":[{"spec":{"name":"b"}}],"continue":"tok",`+
		`"errors":[{"objectId":"c","reason":"RecordCorrupt","message":"m"}]}`), &p))
	assert.Equal(t, ListPage{Items: []ConnectionView{{Spec: connection.Spec{Name: "b"}}}, Continue: "tok",
		Errors: []RecordError{{ObjectID: "c", Reason: RecordCorrupt, Message: "m"}}}, p)
}

// EncodeResult is what Encode makes of the same reply, without scanning the
// result again; it keeps the size limit.
func TestEncodeResultMatchesEncode(t *testing.T) {
	result, err := json.Marshal([]ConnectionView{{Spec: connection.Spec{Name: "a<b>&c"}, ObjectID: "x"}})
	require.NoError(t, err)
	want, err := Encode(Reply{Header: NewHeader(KindReply), Result: result})
	require.NoError(t, err)
	got, err := EncodeResult(result)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))
	var r Reply
	require.NoError(t, Decode(got, KindReply, &r))
	assert.Nil(t, r.Error)

	big, err := json.Marshal(strings.Repeat("x", MaxMessageBytes))
	require.NoError(t, err)
	_, err = EncodeResult(big)
	require.ErrorIs(t, err, ErrTooLarge)
}
