package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// alwaysAbsent is a cache that has never seen any record: right for a new
// connection, stale for every existing one.
func alwaysAbsent(string) bool { return true }

func workloadIdentity(reqID string) connection.Change {
	ch := change(reqID)
	ch.Spec.AuthInfo = connection.AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: "00000000-0000-4000-8000-0000000000ab"}
	ch.Spec.Configurations = []connection.Configuration{{Name: "AZURE_STORAGEBLOB_CLIENTID", Value: "00000000-0000-4000-8000-0000000000ab"}}
	ch.Credentials = nil
	return ch
}

// credentialSecret is the credential Secret of Blob_1 as the fake holds it.
func credentialSecret(t *testing.T, s *Store) (*corev1.Secret, error) {
	t.Helper()
	return s.client.CoreV1().Secrets(ns).Get(context.Background(), connection.CredentialSecretName(connection.ObjectID("Blob_1")), metav1.GetOptions{})
}

func TestACreateKnownAbsentIsTwoWritesAndNoRead(t *testing.T) {
	base, cs := newStore()
	s := base.WithAbsence(alwaysAbsent)
	ctx := context.Background()
	c, applied, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	assert.True(t, applied)
	id := connection.ObjectID("Blob_1")
	assert.Equal(t, []string{
		"create secrets sc-system/sc-conn-" + id + "-cred",
		"create configmaps sc-system/sc-conn-" + id,
	}, fakeactions.Of(cs), "the Secret first, the record as the commit point, nothing read")

	// the same record the read-modify-write path stores
	assert.EqualValues(t, 1, c.Generation)
	assert.Equal(t, connection.PhasePending, c.Status.Phase)
	assert.Equal(t, "Accepted", c.Status.Reason)
	assert.Equal(t, "r1", c.Status.LastRequestID)
	assert.Equal(t, "r1", c.CredentialsVersion)
	assert.EqualValues(t, 1, c.Status.Seq)
	assert.NotEmpty(t, c.Status.Incarnation)
	got, err := base.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, c, got)
	creds, err := base.Credentials(ctx, got)
	require.NoError(t, err)
	assert.Equal(t, credValue, creds["AZURE_STORAGEBLOB_CONNECTIONSTRING"])
	sec, err := credentialSecret(t, base)
	require.NoError(t, err)
	assert.Equal(t, "1", sec.Annotations[record.SchemaAnnotation])

	// without credentials, the record is the one call
	other, cs2 := newStore()
	_, _, err = other.WithAbsence(alwaysAbsent).Apply(ctx, workloadIdentity("r1"))
	require.NoError(t, err)
	assert.Equal(t, []string{"create configmaps sc-system/sc-conn-" + id}, fakeactions.Of(cs2))
}

// A cache that says "absent" for a record that exists costs calls, never
// correctness: the blind create meets AlreadyExists and the retry reads
// and decides as without the cache.
func TestAStaleAbsenceFallsBackToReading(t *testing.T) {
	id := connection.ObjectID("Blob_1")
	cm, sec := "configmaps sc-system/sc-conn-"+id, "secrets sc-system/sc-conn-"+id+"-cred"
	ctx := context.Background()

	t.Run("changed", func(t *testing.T) {
		base, cs := newStore()
		_, _, err := base.Apply(ctx, change("r1"))
		require.NoError(t, err)
		cs.ClearActions()
		ch := change("r2")
		ch.Spec.Scope = "team-b"
		c, applied, err := base.WithAbsence(alwaysAbsent).Apply(ctx, ch)
		require.NoError(t, err)
		assert.True(t, applied)
		assert.Equal(t, []string{"create " + sec, "get " + cm, "get " + sec, "update " + cm}, fakeactions.Of(cs),
			"the Secret exists: nothing overwritten blind, then one read-modify-write")
		assert.EqualValues(t, 2, c.Generation, "stored once")
		assert.Equal(t, "r1", c.CredentialsVersion, "same values: the Secret is kept")
		got, err := base.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, c, got)
	})

	t.Run("redelivered", func(t *testing.T) {
		base, cs := newStore()
		_, _, err := base.Apply(ctx, change("r1"))
		require.NoError(t, err)
		cs.ClearActions()
		c, applied, err := base.WithAbsence(alwaysAbsent).Apply(ctx, change("r1"))
		require.NoError(t, err)
		assert.False(t, applied, "a duplicate by request id is still one")
		assert.EqualValues(t, 1, c.Generation)
		assert.Equal(t, []string{"create " + sec, "get " + cm}, fakeactions.Of(cs))
	})

	t.Run("record without credentials", func(t *testing.T) {
		// the blind Secret create succeeds and the record's fails: the
		// Secret is taken back, and the read-modify-write writes it again
		base, cs := newStore()
		_, _, err := base.Apply(ctx, workloadIdentity("r1"))
		require.NoError(t, err)
		cs.ClearActions()
		c, applied, err := base.WithAbsence(alwaysAbsent).Apply(ctx, change("r2"))
		require.NoError(t, err)
		assert.True(t, applied)
		assert.Equal(t, []string{"create " + sec, "create " + cm, "delete " + sec, "get " + cm, "get " + sec, "create " + sec, "update " + cm},
			fakeactions.Of(cs))
		assert.EqualValues(t, 2, c.Generation)
		assert.Equal(t, "r2", c.CredentialsVersion)
		got, err := base.Get(ctx, id)
		require.NoError(t, err)
		creds, err := base.Credentials(ctx, got)
		require.NoError(t, err, "record and Secret pair")
		assert.Equal(t, credValue, creds["AZURE_STORAGEBLOB_CONNECTIONSTRING"])
	})

	t.Run("terminating", func(t *testing.T) {
		// removed: terminating, its credential Secret already deleted
		base, cs, _ := removed(t)
		cs.ClearActions()
		_, _, err := base.WithAbsence(alwaysAbsent).Apply(ctx, change("r3"))
		require.ErrorIs(t, err, ErrTerminating)
		assert.Equal(t, []string{"create " + sec, "create " + cm, "delete " + sec, "get " + cm}, fakeactions.Of(cs))
		_, err = credentialSecret(t, base)
		assert.True(t, apierrors.IsNotFound(err), "no credential left beside a removed record: %v", err)
	})

	t.Run("newer record", func(t *testing.T) {
		base, cs := newStore()
		_, _, err := base.Apply(ctx, workloadIdentity("r1"))
		require.NoError(t, err)
		rec, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, connection.ConfigMapName(id), metav1.GetOptions{})
		require.NoError(t, err)
		rec.Data[record.KeySchemaVersion] = "2"
		_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, rec, metav1.UpdateOptions{})
		require.NoError(t, err)
		cs.ClearActions()
		_, _, err = base.WithAbsence(alwaysAbsent).Apply(ctx, change("r2"))
		require.ErrorIs(t, err, ErrUnsupportedVersion)
		assert.Equal(t, []string{"create " + sec, "create " + cm, "delete " + sec, "get " + cm}, fakeactions.Of(cs))
		_, err = credentialSecret(t, base)
		assert.True(t, apierrors.IsNotFound(err), "nothing of this build's beside a newer record: %v", err)
	})

	t.Run("newer credential Secret", func(t *testing.T) {
		// a newer release's Secret whose record write never happened
		base, cs := newStore()
		_, _, err := base.Apply(ctx, change("r1"))
		require.NoError(t, err)
		s, err := credentialSecret(t, base)
		require.NoError(t, err)
		s.Annotations[record.SchemaAnnotation] = "2"
		_, err = cs.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
		require.NoError(t, err)
		require.NoError(t, cs.CoreV1().ConfigMaps(ns).Delete(ctx, connection.ConfigMapName(id), metav1.DeleteOptions{}))
		cs.ClearActions()
		_, _, err = base.WithAbsence(alwaysAbsent).Apply(ctx, change("r2"))
		require.ErrorIs(t, err, ErrUnsupportedVersion)
		assert.Equal(t, []string{"create " + sec, "get " + cm, "get " + sec}, fakeactions.Of(cs), "the failed create is the only write")
	})
}

func TestADeleteNeverAsksForAbsence(t *testing.T) {
	base, cs := newStore()
	ctx := context.Background()
	_, _, err := base.Apply(ctx, change("r1"))
	require.NoError(t, err)
	cs.ClearActions()
	asked := 0
	s := base.WithAbsence(func(string) bool { asked++; return true })
	del := change("r2")
	del.Delete, del.Credentials = true, nil
	c, applied, err := s.Apply(ctx, del)
	require.NoError(t, err)
	assert.True(t, applied)
	require.NotNil(t, c.Deletion)
	id := connection.ObjectID("Blob_1")
	assert.Equal(t, []string{"get configmaps sc-system/sc-conn-" + id, "update configmaps sc-system/sc-conn-" + id}, fakeactions.Of(cs))
	assert.Zero(t, asked)
}

func TestAbsentFromCache(t *testing.T) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	require.NoError(t, indexer.Add(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: connection.ConfigMapName("present"), Namespace: ns}}))
	synced := false
	absent := AbsentFromCache(corelisters.NewConfigMapLister(indexer).ConfigMaps(ns), func() bool { return synced })

	assert.False(t, absent("missing"), "an unsynced cache knows nothing")
	synced = true
	assert.True(t, absent("missing"))
	assert.False(t, absent("present"))
}
