package record

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

func TestRoundTripAndLayout(t *testing.T) {
	c := connection.Connection{
		Spec:               connection.Spec{Name: "Blob_1", Scope: "team-a"},
		Generation:         3,
		CredentialsVersion: "r2",
		Deletion:           &connection.Deletion{RequestID: "r3", DeleteResources: true},
		Status:             connection.Status{Phase: connection.PhasePending, Reason: "DeleteRequested"},
		RecentRequestIDs:   []string{"r1", "r2", "r3"},
	}
	cm, err := New("sc-system", c)
	require.NoError(t, err)
	id := connection.ObjectID("Blob_1")
	assert.Equal(t, connection.ConfigMapName(id), cm.Name)
	assert.Equal(t, "sc-system", cm.Namespace)
	assert.Equal(t, map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: id}, cm.Labels)
	assert.Equal(t, "Blob_1", cm.Annotations[connection.AnnotationConnectionName])
	assert.ElementsMatch(t, []string{KeySchemaVersion, KeySpec, KeyGeneration, KeyCredentialsVersion, KeyDeletion, KeyStatus, KeyRequests}, keys(cm.Data))
	assert.Equal(t, "3", cm.Data[KeyGeneration])
	assert.Equal(t, "1", cm.Data[KeySchemaVersion])
	assert.Equal(t, `["r1","r2","r3"]`, cm.Data[KeyRequests])
	assert.True(t, IsRecord(cm))
	assert.Equal(t, id, ID(cm))
	assert.True(t, LabelSelector().Matches(labels.Set(cm.Labels)))

	got, err := Decode(cm)
	require.NoError(t, err)
	assert.Equal(t, c, got)

	// The record's UID reaches the connection (sc-job's creator token is
	// derived from it) but is never written into the record's data.
	cm.UID = "record-uid"
	got, err = Decode(cm)
	require.NoError(t, err)
	assert.Equal(t, "record-uid", got.RecordUID)
	require.NoError(t, Encode(cm, got))
	for k, v := range cm.Data {
		assert.NotContains(t, v, "record-uid", k)
	}
}

func TestDecodeRejectsWhatIsNotARecord(t *testing.T) {
	good, err := New("sc-system", connection.Connection{Spec: connection.Spec{Name: "a"}})
	require.NoError(t, err)
	for name, mutate := range map[string]func(*corev1.ConfigMap){
		"unlabelled":      func(cm *corev1.ConfigMap) { cm.Labels = nil },
		"renamed":         func(cm *corev1.ConfigMap) { cm.Name = "sc-conn-other" },
		"spec of another": func(cm *corev1.ConfigMap) { cm.Data[KeySpec] = `{"name":"b"}` },
		"bad generation":  func(cm *corev1.ConfigMap) { cm.Data[KeyGeneration] = "x" },
		"bad status":      func(cm *corev1.ConfigMap) { cm.Data[KeyStatus] = "{" },
	} {
		t.Run(name, func(t *testing.T) {
			cm := good.DeepCopy()
			mutate(cm)
			_, err := Decode(cm)
			assert.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

func TestIsNotFound(t *testing.T) {
	assert.True(t, IsNotFound(fmt.Errorf("get a: %w", ErrNotFound)))
	assert.False(t, IsNotFound(ErrCorrupt))
}

func FuzzDecode(f *testing.F) {
	f.Add(`{"name":"a","scope":"b"}`, "1", `{"phase":"Pending"}`, `["r1"]`, "", "1")
	f.Add("{", "x", "", "", "{", "")
	f.Add(`{"name":"a"}`, "1", "", "", "", "2")
	f.Fuzz(func(t *testing.T, spec, gen, status, reqs, deletion, schema string) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "sc-conn-a", Labels: map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: "a"}},
			Data: map[string]string{KeySpec: spec, KeyGeneration: gen, KeyStatus: status, KeyRequests: reqs, KeyDeletion: deletion}}
		if schema != "" {
			cm.Data[KeySchemaVersion] = schema
		}
		c, err := Decode(cm)
		if err != nil {
			// the two are exclusive: a newer record is not corrupt
			require.True(t, errors.Is(err, ErrCorrupt) != errors.Is(err, ErrUnsupportedVersion), "%v", err)
			return
		}
		// whatever decodes must survive a round trip
		out := &corev1.ConfigMap{ObjectMeta: *cm.ObjectMeta.DeepCopy()}
		require.NoError(t, Encode(out, c))
		again, err := Decode(out)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(c), fmt.Sprint(again))
	})
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Every encode adds the status finalizer once, keeping others: a record of
// an older release gains it on its next write.
func TestEncodeAddsTheStatusFinalizerOnce(t *testing.T) {
	c := connection.Connection{Spec: connection.Spec{Name: "Blob_1", Scope: "team-a"}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: connection.ConfigMapName(c.Spec.ID()), Finalizers: []string{"example.com/other"}}}
	require.NoError(t, Encode(cm, c))
	require.NoError(t, Encode(cm, c))
	assert.Equal(t, []string{"example.com/other", Finalizer}, cm.Finalizers)
	assert.True(t, HasFinalizer(cm))
	assert.Equal(t, []string{"example.com/other"}, WithoutFinalizer(cm))
	assert.False(t, Terminating(cm))
	cm.DeletionTimestamp = &metav1.Time{}
	assert.True(t, Terminating(cm))
}

// The UIDs of the objects sc-job created live in the status JSON; a record
// of an older release has none, which is how the migration rule in
// pkg/kube/apply tells it apart.
func TestOwnedUIDsRoundTripAndLegacyHasNone(t *testing.T) {
	sec := connection.ResourceRef{Kind: "Secret", Namespace: "team-a", Name: "sc-db1-secret"}
	c := connection.Connection{Spec: connection.Spec{Name: "db1", Scope: "team-a"}, Status: connection.Status{
		Phase: connection.PhaseSucceeded, Resources: []connection.ResourceRef{sec},
		Owned: []connection.OwnedObject{{ResourceRef: sec, UID: "0b6f6c1e-uid"}},
	}}
	cm, err := New("sc-system", c)
	require.NoError(t, err)
	assert.Contains(t, cm.Data[KeyStatus], `"owned":[{"kind":"Secret","namespace":"team-a","name":"sc-db1-secret","uid":"0b6f6c1e-uid"}]`)
	got, err := Decode(cm)
	require.NoError(t, err)
	assert.Equal(t, c.Status.Owned, got.Status.Owned)

	cm.Data[KeyStatus] = `{"phase":"Succeeded","resources":[{"kind":"Secret","namespace":"team-a","name":"sc-db1-secret"}]}`
	legacy, err := Decode(cm)
	require.NoError(t, err)
	assert.Nil(t, legacy.Status.Owned)
	_, ok := legacy.Status.OwnedUID(sec)
	assert.False(t, ok)
}
