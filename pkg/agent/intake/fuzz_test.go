package intake

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// FuzzDecodeRequest drives everything the intake does with untrusted bytes
// before the store sees them: protocol.DecodeRequest, the salvage of id and
// name for the failure event, unsealing and validation. Whatever comes out
// must be either a rejection with a reason or a request for this cluster
// that validates.
func FuzzDecodeRequest(f *testing.F) {
	kp, err := nkeys.CreateCurveKeys()
	require.NoError(f, err)
	pub, err := kp.PublicKey()
	require.NoError(f, err)
	in := &Intake{o: Options{Cluster: "c1", Key: kp}}

	key := "AZURE_STORAGEBLOB_CONNECTIONSTRING"
	creds := connection.Credentials{key: "cred-VALUE-fuzz"}
	sealed, err := protocol.Seal(creds, pub)
	require.NoError(f, err)
	good := protocol.Request{
		Header: protocol.NewHeader(protocol.KindRequest), ID: "r1", Cluster: "c1", Op: protocol.OpCreate,
		SentAt: time.Unix(1700000000, 0).UTC(), Credentials: sealed,
		Connection: connection.Spec{Name: "blob1", Scope: "default",
			TargetService:  connection.TargetService{Type: "storage-blob", ID: "/subscriptions/0/x"},
			AuthInfo:       connection.AuthInfo{AuthType: "secret"},
			Configurations: []connection.Configuration{{Name: key, Credential: true}}},
	}
	for _, r := range []protocol.Request{good, func() protocol.Request { r := good; r.Op = protocol.OpDelete; r.Credentials = nil; return r }()} {
		b, err := json.Marshal(r)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(`{"apiVersion":"sc.v1","kind":"ConnectionRequest"}`))
	f.Add([]byte(`{"apiVersion":"sc.v9","id":"x","connection":{"name":"n"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, got, rej := in.admit(data)
		if rej != nil {
			require.NotEmpty(t, rej.reason)
			require.Error(t, rej.err)
			require.NotContains(t, rej.err.Error(), "cred-VALUE-fuzz")
			return
		}
		require.Equal(t, "c1", req.Cluster)
		if req.Op != protocol.OpDelete {
			require.NoError(t, connection.Validate(req.Connection, got))
		}
		_, err := protocol.Encode(req)
		require.NoError(t, err)
	})
}
