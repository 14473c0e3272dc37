package intake_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// The envelope rules of docs/protocol.md "Compatibility and upgrades" as
// the agent applies them to requests on the real request stream.

// A newer scctl may add fields within sc.v1: the agent ignores what it
// does not know, at the top and inside the spec, and applies the rest.
func TestRequestWithAddedFieldsIsApplied(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	e.agent(true)
	ctx := ctxT(t)
	spec, creds := e.spec("blob1")
	sealed, err := protocol.Seal(creds, mustPub(t, e.key))
	require.NoError(t, err)
	b, err := json.Marshal(protocol.Request{Header: protocol.NewHeader(protocol.KindRequest), ID: "added-fields",
		Cluster: cluster, Op: protocol.OpCreate, Connection: spec, Credentials: sealed})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	m["priority"] = map[string]any{"class": "high"}
	m["connection"].(map[string]any)["rotation"] = map[string]any{"every": "30d"}
	data, err := json.Marshal(m)
	require.NoError(t, err)

	events := e.statuses("blob1")
	_, err = e.cp.PublishRaw(ctx, "added-fields", data, true)
	require.NoError(t, err)
	ev := await(t, events, "outcome of added-fields", ofRequest("added-fields"))
	assert.NotEqual(t, connection.PhaseFailed, ev.Phase, "%s: %s", ev.Reason, ev.Message)
	e.settled()
	_, applied := e.store.snapshot()
	assert.Equal(t, []string{"added-fields"}, applied)
	got, err := e.store.Get(ctx, connection.ObjectID("blob1"))
	require.NoError(t, err)
	assert.Equal(t, spec, got.Spec, "the known fields, intact")
	assert.Equal(t, creds, e.store.Credentials(connection.ObjectID("blob1")))
}

// A request of an envelope version the agent does not decode ends at once
// with Failed/UnsupportedVersion, naming both versions, even when its body
// means something else in that version; nothing reaches the store and it
// is not redelivered. Only id, op and connection.name are read from it, so
// that its sender learns the outcome.
func TestRequestOfUnknownVersionFailsUnsupportedVersion(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	e.agent(true)
	ctx := ctxT(t)
	events := e.statuses("blob1")
	data := []byte(`{"apiVersion":"sc.v2","kind":"ConnectionRequest","id":"from-v2","op":"create","cluster":"c1",` +
		`"connection":{"name":"blob1","target":{"kind":"storage-blob","ids":["a","b"]}},"credentials":"sealed the v2 way",` +
		`"sentAt":1767225600}`)
	_, err := e.cp.PublishRaw(ctx, "from-v2", data, true)
	require.NoError(t, err)

	ev := await(t, events, "failure of from-v2", ofRequest("from-v2"))
	assert.Equal(t, connection.PhaseFailed, ev.Phase)
	assert.Equal(t, intake.ReasonUnsupportedVersion, ev.Reason)
	assert.Contains(t, ev.Message, `"sc.v2"`)
	assert.Contains(t, ev.Message, `"sc.v1"`)
	assert.Zero(t, ev.Generation, "a rejection at intake never ends another request's wait")
	e.settled()
	calls, applied := e.store.snapshot()
	assert.Zero(t, calls, "the store never saw it")
	assert.Empty(t, applied)
	assert.NotContains(t, e.logs.String(), `"delivered":2`, "terminated, not redelivered")
}
