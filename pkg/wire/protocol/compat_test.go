package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// The compatibility rules of docs/protocol.md "Compatibility and upgrades".
// v0.1.0 is commit ad02d28 (tag v0.1.0); the shapes below are copied from
// `git show ad02d28:pkg/wire/protocol/envelope.go`, not derived from today's
// types, so a change to those types cannot make these tests agree with it.

// v010Heartbeat is v0.1.0's Heartbeat, field for field.
type v010Heartbeat struct {
	APIVersion   string    `json:"apiVersion"`
	Kind         string    `json:"kind"`
	Cluster      string    `json:"cluster"`
	AgentVersion string    `json:"agentVersion"`
	Pod          string    `json:"pod,omitempty"`
	Leader       bool      `json:"leader"`
	Ready        bool      `json:"ready"`
	LastError    string    `json:"lastError,omitempty"`
	Connections  int       `json:"connections"`
	Time         time.Time `json:"time"`
}

// v010Decode is v0.1.0's Decode minus the size check: header, exact
// version "sc.v1", kind, then encoding/json into out.
func v010Decode(data []byte, kind string, out any) error {
	var h struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return err
	}
	if h.APIVersion != "sc.v1" || h.Kind != kind {
		return fmt.Errorf("v0.1.0 refuses %s/%s", h.APIVersion, h.Kind)
	}
	return json.Unmarshal(data, out)
}

// A heartbeat as a v0.1.0 agent publishes it (json.Marshal of v010Heartbeat).
const v010HeartbeatJSON = `{"apiVersion":"sc.v1","kind":"Heartbeat","cluster":"c1","agentVersion":"v0.1.0",` +
	`"pod":"sc-agent-7c9d-x2k","leader":true,"ready":true,"connections":3,"time":"2025-03-01T12:00:00Z"}`

func TestV010HeartbeatReadsAsSCv1Schema1(t *testing.T) {
	// the literal is what v0.1.0 marshals
	var old v010Heartbeat
	require.NoError(t, json.Unmarshal([]byte(v010HeartbeatJSON), &old))
	again, err := json.Marshal(old)
	require.NoError(t, err)
	require.JSONEq(t, v010HeartbeatJSON, string(again))
	assert.Equal(t, v010HeartbeatJSON, string(again), "field order and omissions of v0.1.0")

	hb, err := DecodeHeartbeat([]byte(v010HeartbeatJSON))
	require.NoError(t, err)
	assert.Nil(t, hb.APIVersions, "not sent")
	assert.Zero(t, hb.RecordSchema, "not sent")
	assert.Equal(t, []string{"sc.v1"}, hb.Versions())
	assert.True(t, hb.Speaks(APIVersion))
	assert.False(t, hb.Speaks("sc.v2"))
	assert.Equal(t, 1, hb.Schema())
	assert.Equal(t, "v0.1.0", hb.AgentVersion)
	assert.Equal(t, 3, hb.Connections)
	assert.True(t, hb.Leader && hb.Ready)
}

func TestTodaysHeartbeatDecodesInV010Reader(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now := Heartbeat{Header: NewHeader(KindHeartbeat), Cluster: "c1", AgentVersion: "v0.2.0",
		APIVersions: APIVersions(), RecordSchema: 1, Pod: "p", Leader: true, Ready: true,
		LastError: "e", Connections: 4, Time: at}
	b, err := Encode(now)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"apiVersions":["sc.v1"]`)
	assert.Contains(t, string(b), `"recordSchema":1`)

	var old v010Heartbeat
	require.NoError(t, v010Decode(b, "Heartbeat", &old))
	assert.Equal(t, v010Heartbeat{APIVersion: "sc.v1", Kind: "Heartbeat", Cluster: "c1", AgentVersion: "v0.2.0",
		Pod: "p", Leader: true, Ready: true, LastError: "e", Connections: 4, Time: at}, old)

	back, err := DecodeHeartbeat(b)
	require.NoError(t, err)
	assert.Equal(t, now, back)
	assert.Equal(t, 1, back.Schema())

	// without the new fields the heartbeat is byte for byte v0.1.0's
	bare, err := Encode(Heartbeat{Header: NewHeader(KindHeartbeat), Cluster: "c1", AgentVersion: "v0.1.0",
		Pod: "sc-agent-7c9d-x2k", Leader: true, Ready: true, Connections: 3, Time: at})
	require.NoError(t, err)
	assert.Equal(t, v010HeartbeatJSON, string(bare))
}

// A heartbeat of an envelope version this build does not know still names
// the agent's release and versions, which is all scctl needs to say why it
// will not talk to the agent; strict Decode refuses it as ever.
func TestNewerHeartbeatYieldsItsFrozenFields(t *testing.T) {
	v2 := `{"apiVersion":"sc.v2","kind":"Heartbeat","cluster":"c1","agentVersion":"v1.0.0","apiVersions":["sc.v2"],` +
		`"recordSchema":2,"time":"2026-01-02T03:04:05Z","ready":"a field whose type changed","replicas":[{"pod":"a"}]}`
	var strict Heartbeat
	require.ErrorIs(t, Decode([]byte(v2), KindHeartbeat, &strict), ErrUnsupportedVersion)

	hb, err := DecodeHeartbeat([]byte(v2))
	require.NoError(t, err)
	assert.Equal(t, "sc.v2", hb.APIVersion)
	assert.Equal(t, "v1.0.0", hb.AgentVersion)
	assert.Equal(t, []string{"sc.v2"}, hb.Versions())
	assert.False(t, hb.Speaks(APIVersion))
	assert.Equal(t, 2, hb.Schema())
	assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), hb.Time)
	assert.False(t, hb.Ready, "fields outside the frozen set are not read from another version")

	// without apiVersions, the heartbeat's own version is what it speaks
	hb, err = DecodeHeartbeat([]byte(`{"apiVersion":"sc.v3","kind":"Heartbeat","agentVersion":"v2.0.0"}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"sc.v3"}, hb.Versions())

	for name, data := range map[string]string{
		"other kind":         `{"apiVersion":"sc.v2","kind":"Status","agentVersion":"v1.0.0"}`,
		"frozen field typed": `{"apiVersion":"sc.v2","kind":"Heartbeat","apiVersions":"sc.v2"}`,
		"not json":           `{"apiVersion":`,
	} {
		_, err := DecodeHeartbeat([]byte(data))
		assert.ErrorIs(t, err, ErrInvalidEnvelope, name)
	}
}

// Additive changes keep sc.v1: every kind decodes with fields it does not
// know, at the top and nested, and keeps the ones it does.
func TestEnvelopesIgnoreUnknownFields(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	withExtras := func(t *testing.T, v any) []byte {
		t.Helper()
		b, err := json.Marshal(v)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		m["addedLater"] = map[string]any{"deep": []int{1, 2}}
		if c, ok := m["connection"].(map[string]any); ok {
			c["addedLater"] = "x"
		}
		b, err = json.Marshal(m)
		require.NoError(t, err)
		return b
	}

	req := validRequest()
	got, err := DecodeRequest(withExtras(t, req))
	require.NoError(t, err)
	assert.Equal(t, req, got)

	ev := StatusEvent{Header: NewHeader(KindStatus), Cluster: "c1", Connection: "a", ObjectID: "a", Generation: 2,
		Phase: connection.PhaseSucceeded, Time: at, Seq: 3, Incarnation: "i"}
	var gotEv StatusEvent
	require.NoError(t, Decode(withExtras(t, ev), KindStatus, &gotEv))
	assert.Equal(t, ev, gotEv)

	hb := Heartbeat{Header: NewHeader(KindHeartbeat), Cluster: "c1", AgentVersion: "v1", APIVersions: APIVersions(), Time: at}
	gotHb, err := DecodeHeartbeat(withExtras(t, hb))
	require.NoError(t, err)
	assert.Equal(t, hb, gotHb)

	q := Query{Header: NewHeader(KindQuery), Verb: VerbShow, Connection: "a"}
	var gotQ Query
	require.NoError(t, Decode(withExtras(t, q), KindQuery, &gotQ))
	assert.Equal(t, q, gotQ)
}

// A version this build does not decode is refused before its kind or body
// is looked at: whatever sc.v2 means by a body, it is not read as sc.v1.
func TestUnknownVersionIsRefusedBeforeKindAndBody(t *testing.T) {
	for _, kind := range []string{KindRequest, KindStatus, KindHeartbeat, KindQuery, KindReply} {
		for _, version := range []string{"sc.v2", "sc.v0", "", "SC.V1"} {
			data := fmt.Sprintf(`{"apiVersion":%q,"kind":"SomethingNew","connection":"no longer an object","id":7}`, version)
			var out map[string]any
			err := Decode([]byte(data), kind, &out)
			require.ErrorIs(t, err, ErrUnsupportedVersion, "%s %q", kind, version)
			assert.False(t, errors.Is(err, ErrInvalidEnvelope), "a version problem, not a body problem")
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", version))
			assert.Contains(t, err.Error(), `"sc.v1"`, "names the version this build speaks")
			assert.Nil(t, out, "nothing decoded")
		}
	}
	_, err := DecodeRequest([]byte(`{"apiVersion":"sc.v2","kind":"ConnectionRequest","id":"r","cluster":"c1","op":"create"}`))
	require.ErrorIs(t, err, ErrUnsupportedVersion)
}

// What additivity does not cover: a field sc.v1 knows, sent with another
// type, is invalid rather than guessed at; such a change needs a new version.
func TestRetypedFieldIsInvalidWithinSCv1(t *testing.T) {
	r := validRequest()
	b, err := json.Marshal(r)
	require.NoError(t, err)
	retyped := strings.Replace(string(b), `"op":"create"`, `"op":["create"]`, 1)
	require.NotEqual(t, string(b), retyped)
	_, err = DecodeRequest([]byte(retyped))
	require.ErrorIs(t, err, ErrInvalidEnvelope)
	assert.NotErrorIs(t, err, ErrUnsupportedVersion)
}

func TestAPIVersionsIsACopy(t *testing.T) {
	v := APIVersions()
	require.Equal(t, []string{APIVersion}, v)
	v[0] = "mutated"
	assert.Equal(t, []string{APIVersion}, APIVersions())
	hb := Heartbeat{APIVersions: []string{"sc.v1"}}
	hb.Versions()[0] = "mutated"
	assert.Equal(t, []string{"sc.v1"}, hb.APIVersions)
	assert.Equal(t, []string{"sc.v1"}, Heartbeat{}.Versions(), "nothing said at all: the only version before the field")
}
