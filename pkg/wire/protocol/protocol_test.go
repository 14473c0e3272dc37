package protocol

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

func validRequest() Request {
	return Request{
		Header:     NewHeader(KindRequest),
		ID:         "req-1",
		Cluster:    "c1",
		Op:         OpCreate,
		SentAt:     time.Unix(1700000000, 0).UTC(),
		Connection: connection.Spec{Name: "blob1", Scope: "default"},
	}
}

func TestRequestRoundTrip(t *testing.T) {
	b, err := Encode(validRequest())
	require.NoError(t, err)
	got, err := DecodeRequest(b)
	require.NoError(t, err)
	assert.Equal(t, validRequest(), got)
}

func TestDecodeRequestRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Request)
		want   error
		field  string
	}{
		{"version", func(r *Request) { r.APIVersion = "sc.v2" }, ErrUnsupportedVersion, `"sc.v2"`},
		{"kind", func(r *Request) { r.Kind = KindQuery }, ErrInvalidEnvelope, "kind"},
		{"no id", func(r *Request) { r.ID = "" }, ErrInvalidEnvelope, "id:"},
		{"cluster with dot", func(r *Request) { r.Cluster = "a.b" }, ErrInvalidEnvelope, "cluster"},
		{"op", func(r *Request) { r.Op = "patch" }, ErrInvalidEnvelope, "op:"},
		{"name", func(r *Request) { r.Connection.Name = "bad name" }, ErrInvalidEnvelope, "name:"},
		{"deleteResources on create", func(r *Request) { r.DeleteResources = true }, ErrInvalidEnvelope, "deleteResources"},
		{"credentials on delete", func(r *Request) { r.Op = OpDelete; r.Credentials = &Sealed{} }, ErrInvalidEnvelope, "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.mutate(&r)
			b, err := json.Marshal(r)
			require.NoError(t, err)
			_, err = DecodeRequest(b)
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), tt.field)
		})
	}
}

func TestDecodeRejectsGarbageAndOversize(t *testing.T) {
	_, err := DecodeRequest([]byte("{not json"))
	require.ErrorIs(t, err, ErrInvalidEnvelope)

	big := validRequest()
	big.Connection.Annotations = map[string]string{"a": strings.Repeat("x", MaxMessageBytes)}
	_, err = Encode(big)
	require.ErrorIs(t, err, ErrTooLarge)
	raw, _ := json.Marshal(big)
	_, err = DecodeRequest(raw)
	require.ErrorIs(t, err, ErrTooLarge)
}

func TestSealOpen(t *testing.T) {
	agent, err := nkeys.CreateCurveKeys()
	require.NoError(t, err)
	pub, err := agent.PublicKey()
	require.NoError(t, err)
	creds := connection.Credentials{"AZURE_STORAGEBLOB_CONNECTIONSTRING": "cred-VALUE-seal"}

	sealed, err := Seal(creds, pub)
	require.NoError(t, err)
	assert.NotContains(t, string(sealed.Ciphertext), "cred-VALUE-seal")
	wire, err := json.Marshal(sealed)
	require.NoError(t, err)
	assert.NotContains(t, string(wire), "cred-VALUE-seal")

	got, err := sealed.Open(agent)
	require.NoError(t, err)
	assert.Equal(t, creds, got)

	other, err := nkeys.CreateCurveKeys()
	require.NoError(t, err)
	_, err = sealed.Open(other)
	require.ErrorIs(t, err, ErrUnseal)

	sealed.Ciphertext[len(sealed.Ciphertext)-1] ^= 0xff
	_, err = sealed.Open(agent)
	require.ErrorIs(t, err, ErrUnseal)
	assert.NotContains(t, err.Error(), "cred-VALUE-seal")
}

func TestSealRejectsNonCurveRecipient(t *testing.T) {
	_, err := Seal(connection.Credentials{}, "not-a-key")
	require.ErrorIs(t, err, ErrInvalidEnvelope)
}

func TestSubjectsStayInsideClusterPrefix(t *testing.T) {
	prefix := "sc.v1.c1."
	for _, s := range []string{RequestSubject("c1"), StatusSubject("c1", "x"), StatusSubjectAll("c1"),
		HeartbeatSubject("c1"), QuerySubject("c1", VerbShow), QuerySubjectAll("c1")} {
		assert.True(t, strings.HasPrefix(s, prefix), s)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	good, _ := Encode(validRequest())
	f.Add(good)
	f.Add([]byte(`{"apiVersion":"sc.v1","kind":"ConnectionRequest"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRequest(data)
		if err != nil {
			return
		}
		// whatever decodes must be routable and re-encodable
		require.NoError(t, ValidateCluster(r.Cluster))
		_, err = Encode(r)
		require.NoError(t, err)
	})
}

// seq and incarnation were added to sc.v1: an event without them encodes
// as before, and one with them decodes in a reader that does not know them.
func TestStatusSeqIsBackwardCompatible(t *testing.T) {
	plain, err := Encode(StatusEvent{Header: NewHeader(KindStatus), Cluster: "c1", Connection: "a", ObjectID: "a"})
	require.NoError(t, err)
	assert.NotContains(t, string(plain), `"seq"`)
	assert.NotContains(t, string(plain), `"incarnation"`)

	withSeq, err := Encode(StatusEvent{Header: NewHeader(KindStatus), Cluster: "c1", Connection: "a", ObjectID: "a", Seq: 4, Incarnation: "i"})
	require.NoError(t, err)
	var older struct {
		Header
		Cluster string `json:"cluster"`
	}
	require.NoError(t, Decode(withSeq, KindStatus, &older))
	assert.Equal(t, "c1", older.Cluster)
	var ev StatusEvent
	require.NoError(t, Decode(withSeq, KindStatus, &ev))
	assert.EqualValues(t, 4, ev.Seq)
	assert.Equal(t, "i", ev.Incarnation)
}
