package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// stored applies r1 for Blob_1 and returns its record and credential
// Secret as the API server holds them.
func stored(t *testing.T, s *Store, cs *fake.Clientset) (*corev1.ConfigMap, *corev1.Secret) {
	t.Helper()
	ctx := context.Background()
	c, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, connection.ConfigMapName(c.Spec.ID()), metav1.GetOptions{})
	require.NoError(t, err)
	sec, err := cs.CoreV1().Secrets(ns).Get(ctx, connection.CredentialSecretName(c.Spec.ID()), metav1.GetOptions{})
	require.NoError(t, err)
	return cm, sec
}

func TestWritesStampTheSchemaVersion(t *testing.T) {
	s, cs := newStore()
	cm, sec := stored(t, s, cs)
	assert.Equal(t, "1", cm.Data[record.KeySchemaVersion])
	assert.Equal(t, "1", sec.Annotations[record.SchemaAnnotation])
}

// A record a newer release wrote (schemaVersion 2, with a key this build
// does not know) is refused by every write path after one read: rewriting
// it would drop what this build cannot see.
func TestEveryWriteRefusesANewerRecord(t *testing.T) {
	s, cs := newStore()
	cm, _ := stored(t, s, cs)
	ctx := context.Background()
	id := record.ID(cm)
	// deleting, so that Remove would otherwise go ahead
	cm.Data[record.KeySchemaVersion] = "2"
	cm.Data[record.KeyDeletion] = `{"requestId":"r2","deleteResources":true}`
	cm.Data["futureField"] = "kept"
	_, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	newer, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
	require.NoError(t, err)

	rotated := change("r3")
	rotated.Credentials["AZURE_STORAGEBLOB_CONNECTIONSTRING"] = "cred-VALUE-rotated"
	del := change("r4")
	del.Delete, del.Credentials = true, nil
	for name, write := range map[string]func() error{
		"apply":  func() error { _, _, err := s.Apply(ctx, rotated); return err },
		"delete": func() error { _, _, err := s.Apply(ctx, del); return err },
		"replay": func() error { _, _, err := s.Apply(ctx, change("r1")); return err },
		"status": func() error {
			_, err := s.UpdateStatus(ctx, id, func(*connection.Connection) error { return nil })
			return err
		},
		"pending": func() error { return s.MarkPending(ctx, id, "Drift", "x") },
		"wake":    func() error { return s.Wake(ctx, id, "NamespaceCreated", "x") },
		"remove":  func() error { return s.Remove(ctx, id) },
	} {
		t.Run(name, func(t *testing.T) {
			cs.ClearActions()
			err := write()
			require.ErrorIs(t, err, ErrUnsupportedVersion)
			assert.NotErrorIs(t, err, ErrCorrupt)
			assert.NotErrorIs(t, err, ErrNotFound)
			assert.Equal(t, []string{"get configmaps sc-system/" + cm.Name}, fakeactions.Of(cs), "one read, no write")
		})
	}
	got, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, newer, got)

	// reads say so too; List returns the others and reports it
	_, err = s.Get(ctx, id)
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	list, err := s.List(ctx)
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	assert.NotErrorIs(t, err, ErrCorrupt)
	assert.Empty(t, list)
}

// The credential Secret is written first: a newer release's Secret (its
// record write may not have happened yet) is neither read, overwritten nor
// deleted.
func TestANewerCredentialSecretIsRefused(t *testing.T) {
	s, cs := newStore()
	cm, sec := stored(t, s, cs)
	ctx := context.Background()
	id := record.ID(cm)
	sec.Annotations[record.SchemaAnnotation] = "2"
	_, err := cs.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{})
	require.NoError(t, err)
	secName := "secrets sc-system/" + sec.Name

	c, err := s.Get(ctx, id)
	require.NoError(t, err)
	_, err = s.Credentials(ctx, c)
	require.ErrorIs(t, err, ErrUnsupportedVersion)

	cs.ClearActions()
	rotated := change("r2")
	rotated.Credentials["AZURE_STORAGEBLOB_CONNECTIONSTRING"] = "cred-VALUE-rotated"
	_, _, err = s.Apply(ctx, rotated)
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	assert.NotContains(t, err.Error(), "cred-VALUE")
	assert.Equal(t, []string{"get configmaps sc-system/" + cm.Name, "get " + secName}, fakeactions.Of(cs))

	del := change("r3")
	del.Delete, del.Credentials = true, nil
	_, _, err = s.Apply(ctx, del)
	require.NoError(t, err, "the record is this build's: its deletion is recorded")
	cs.ClearActions()
	require.ErrorIs(t, s.Remove(ctx, id), ErrUnsupportedVersion)
	assert.Equal(t, []string{"get configmaps sc-system/" + cm.Name, "get " + secName}, fakeactions.Of(cs), "neither deleted")

	// a Secret left by a newer release whose record write never happened
	fresh, _ := newStore(sec)
	_, _, err = fresh.Apply(ctx, change("r9"))
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	assert.Empty(t, fakeactions.Writes(fresh.client.(*fake.Clientset).Actions()))
}

// A v0.1.0 record (no schemaVersion, Secret without the annotation) reads
// as before and is not rewritten only to migrate it; its next ordinary
// write stamps version 1 and keeps every field.
func TestAnOlderRecordMigratesOnItsNextWrite(t *testing.T) {
	s, cs := newStore()
	cm, sec := stored(t, s, cs)
	ctx := context.Background()
	id := record.ID(cm)
	delete(cm.Data, record.KeySchemaVersion)
	delete(sec.Annotations, record.SchemaAnnotation)
	_, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{})
	require.NoError(t, err)

	before, err := s.Get(ctx, id)
	require.NoError(t, err)
	creds, err := s.Credentials(ctx, before)
	require.NoError(t, err)
	assert.Equal(t, credValue, creds["AZURE_STORAGEBLOB_CONNECTIONSTRING"])

	cs.ClearActions()
	require.NoError(t, s.MarkPending(ctx, id, "Drift", "x"), "already pending")
	_, applied, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	assert.False(t, applied)
	assert.Empty(t, fakeactions.Writes(cs.Actions()), "no write just to migrate")

	after, err := s.UpdateStatus(ctx, id, func(c *connection.Connection) error { c.Status.Phase = connection.PhaseSucceeded; return nil })
	require.NoError(t, err)
	got, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "1", got.Data[record.KeySchemaVersion])
	for _, k := range []string{record.KeySpec, record.KeyGeneration, record.KeyCredentialsVersion, record.KeyRequests} {
		assert.Equal(t, cm.Data[k], got.Data[k], k)
	}
	want := before
	want.Status.Phase, want.Status.Seq, want.Status.UpdatedAt = connection.PhaseSucceeded, before.Status.Seq+1, after.Status.UpdatedAt
	assert.Equal(t, want, after)

	// the Secret migrates when its values are next written
	rotated := change("r2")
	rotated.Credentials["AZURE_STORAGEBLOB_CONNECTIONSTRING"] = "cred-VALUE-rotated"
	_, _, err = s.Apply(ctx, rotated)
	require.NoError(t, err)
	sec, err = cs.CoreV1().Secrets(ns).Get(ctx, sec.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "1", sec.Annotations[record.SchemaAnnotation])
}
