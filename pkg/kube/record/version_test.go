package record

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

func stored(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	cm, err := New("sc-system", connection.Connection{Spec: connection.Spec{Name: "Blob_1", Scope: "team-a"}, Generation: 2,
		Status: connection.Status{Phase: connection.PhaseSucceeded, Seq: 7}})
	require.NoError(t, err)
	return cm
}

// v0.1.0 wrote no schemaVersion: such a record is version 1 and decodes
// as before.
func TestDecodeReadsARecordWithoutSchemaVersionAsVersion1(t *testing.T) {
	cm := stored(t)
	want, err := Decode(cm)
	require.NoError(t, err)
	delete(cm.Data, KeySchemaVersion)
	got, err := Decode(cm)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

// A newer record is refused as such, not as corrupt, naming both versions,
// and nothing of it is decoded (its fields may mean something else).
func TestDecodeRefusesANewerSchema(t *testing.T) {
	cm := stored(t)
	cm.Data[KeySchemaVersion] = "2"
	c, err := Decode(cm)
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	assert.NotErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "schema version 2, this build supports up to 1")
	assert.Equal(t, connection.Connection{}, c)
}

func TestDecodeTakesAnUnparsableSchemaForCorrupt(t *testing.T) {
	for _, v := range []string{"", "x", "0", "-1", "01", " 1", "1.0", "99999999999999999999"} {
		t.Run(v, func(t *testing.T) {
			cm := stored(t)
			cm.Data[KeySchemaVersion] = v
			_, err := Decode(cm)
			require.ErrorIs(t, err, ErrCorrupt)
			assert.NotErrorIs(t, err, ErrUnsupportedVersion)
		})
	}
}

// Encode migrates an older record (stamps the version, keeps the rest) and
// refuses a newer one without touching it: it replaces all data, so it
// would drop what this build cannot see.
func TestEncodeMigratesOlderAndRefusesNewer(t *testing.T) {
	legacy := stored(t)
	delete(legacy.Data, KeySchemaVersion)
	c, err := Decode(legacy)
	require.NoError(t, err)
	require.NoError(t, Encode(legacy, c))
	assert.Equal(t, "1", legacy.Data[KeySchemaVersion])
	again, err := Decode(legacy)
	require.NoError(t, err)
	assert.Equal(t, c, again)

	newer := stored(t)
	newer.Data[KeySchemaVersion] = "2"
	newer.Data["somethingNew"] = "x"
	before := newer.DeepCopy()
	err = Encode(newer, c)
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	assert.Equal(t, before, newer, "left as it was")
}

func TestCredentialsSchemaAnnotation(t *testing.T) {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sc-conn-x-cred"}}
	require.NoError(t, CheckCredentials(sec), "v0.1.0's Secret has no annotation")
	StampCredentials(&sec.ObjectMeta)
	assert.Equal(t, map[string]string{SchemaAnnotation: "1"}, sec.Annotations)
	require.NoError(t, CheckCredentials(sec))

	sec.Annotations[SchemaAnnotation] = "2"
	err := CheckCredentials(sec)
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	assert.Contains(t, err.Error(), "secret sc-conn-x-cred: schema version 2, this build supports up to 1")
	sec.Annotations[SchemaAnnotation] = "two"
	require.ErrorIs(t, CheckCredentials(sec), ErrCorrupt)
}
