package protocol

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeartbeatFeaturesRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hb := Heartbeat{Header: NewHeader(KindHeartbeat), Cluster: "c1", AgentVersion: "v0.2.0",
		APIVersions: APIVersions(), RecordSchema: 1, Features: Features(), Time: at}
	b, err := Encode(hb)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"features":["binding"]`)

	back, err := DecodeHeartbeat(b)
	require.NoError(t, err)
	assert.Equal(t, hb, back)
	assert.True(t, back.Supports(FeatureBinding))
	assert.False(t, back.Supports("somethingElse"))

	// a v0.1.0 reader keeps decoding it: features is one more unknown field
	var old v010Heartbeat
	require.NoError(t, v010Decode(b, KindHeartbeat, &old))
	assert.Equal(t, "v0.2.0", old.AgentVersion)
}

func TestHeartbeatWithoutFeaturesSupportsNone(t *testing.T) {
	hb, err := DecodeHeartbeat([]byte(v010HeartbeatJSON))
	require.NoError(t, err)
	assert.Nil(t, hb.Features)
	assert.False(t, hb.Supports(FeatureBinding), "v0.1.0 ignores spec.binding")

	// and an agent with no features sends no field at all
	b, err := Encode(Heartbeat{Header: NewHeader(KindHeartbeat), Cluster: "c1", Features: []string{}})
	require.NoError(t, err)
	assert.NotContains(t, string(b), "features")
}

// features is in the frozen set: scctl must be able to ask a newer agent
// (one that still decodes sc.v1) whether it binds.
func TestNewerHeartbeatKeepsFeatures(t *testing.T) {
	v2 := `{"apiVersion":"sc.v2","kind":"Heartbeat","agentVersion":"v1.0.0","apiVersions":["sc.v2","sc.v1"],"features":["binding","x"]}`
	hb, err := DecodeHeartbeat([]byte(v2))
	require.NoError(t, err)
	assert.Equal(t, []string{"binding", "x"}, hb.Features)
	assert.True(t, hb.Supports(FeatureBinding))
	assert.True(t, hb.Speaks(APIVersion))
}

func TestFeaturesIsACopy(t *testing.T) {
	f := Features()
	require.Equal(t, []string{FeatureBinding}, f)
	f[0] = "mutated"
	assert.Equal(t, []string{FeatureBinding}, Features())
}
