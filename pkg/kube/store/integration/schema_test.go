//go:build integration

package store_integration

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// Literal metadata, not the constants: these tests pin what is on the
// cluster, which a renamed constant must not silently move.
func ownedMeta(ns, name, connName string, annotations map[string]string) metav1.ObjectMeta {
	a := map[string]string{"servicelinker.sc-extension.io/connection-name": connName}
	for k, v := range annotations {
		a[k] = v
	}
	return metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: a, Labels: map[string]string{
		"app.kubernetes.io/managed-by":             "sc-extension",
		"servicelinker.sc-extension.io/connection": connName,
	}}
}

// A record a newer release wrote by hand (schemaVersion 2, a key and a
// status field this build does not know, a pending deletion, a newer
// credential Secret) survives every write this build's store can attempt
// byte for byte: same resourceVersion, same data.
func TestANewerRecordSurvivesEveryWrite(t *testing.T) {
	cs := kubetest.New(t).Clientset
	ns := kubetest.Namespace(t)
	release(t, ns)
	ctx := context.Background()
	cmMeta := ownedMeta(ns, "sc-conn-future", "future", nil)
	cmMeta.Finalizers = []string{"sc-extension.io/status"}
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: cmMeta, Data: map[string]string{
		"schemaVersion":      "2",
		"spec":               `{"name":"future","scope":"team-a","targetService":{"type":"storage-blob","id":"/subscriptions/x"},"authInfo":{"authType":"secret"},"configurations":[{"name":"AZURE_STORAGEBLOB_CONNECTIONSTRING","value":"","credential":true}]}`,
		"generation":         "4",
		"credentialsVersion": "r4",
		"deletion":           `{"requestId":"r5","deleteResources":true}`,
		"status":             `{"phase":"Pending","reason":"DeleteRequested","observedGeneration":4,"lastRequestId":"r5","updatedAt":"2026-01-01T00:00:00Z","seq":9,"incarnation":"FUTURE","shards":[1,2]}`,
		"recentRequestIds":   `["r4","r5"]`,
		"placement":          `{"zone":"b"}`,
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	sec, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: ownedMeta(ns, "sc-conn-future-cred", "future", map[string]string{
			"servicelinker.sc-extension.io/credentials-version": "r4",
			"servicelinker.sc-extension.io/schema-version":      "2",
		}),
		Data: map[string][]byte{"AZURE_STORAGEBLOB_CONNECTIONSTRING": []byte("cred-VALUE-future")},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	s := store.New(cs, ns)
	rotated := change("future", "r6", "team-a", "cred-VALUE-rotated")
	del := change("future", "r7", "team-a", "")
	del.Delete, del.Credentials = true, nil
	for name, write := range map[string]func() error{
		"apply":        func() error { _, _, err := s.Apply(ctx, rotated); return err },
		"apply delete": func() error { _, _, err := s.Apply(ctx, del); return err },
		"replay": func() error {
			_, _, err := s.Apply(ctx, change("future", "r4", "team-a", "cred-VALUE-future"))
			return err
		},
		"status": func() error {
			_, err := s.UpdateStatus(ctx, "future", func(c *connection.Connection) error { c.Status.Phase = connection.PhaseRunning; return nil })
			return err
		},
		"mark pending": func() error { return s.MarkPending(ctx, "future", "Drift", "x") },
		"wake":         func() error { return s.Wake(ctx, "future", "NamespaceCreated", "x") },
		"remove":       func() error { return s.Remove(ctx, "future") },
	} {
		err := write()
		require.ErrorIs(t, err, store.ErrUnsupportedVersion, name)
		assert.Contains(t, err.Error(), "schema version 2, this build supports up to 1", name)
	}

	got, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, cm.ResourceVersion, got.ResourceVersion, "never written")
	assert.Equal(t, cm.Data, got.Data)
	assert.Equal(t, cm.Finalizers, got.Finalizers)
	assert.Nil(t, got.DeletionTimestamp, "never deleted")
	gotSec, err := cs.CoreV1().Secrets(ns).Get(ctx, sec.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, sec.ResourceVersion, gotSec.ResourceVersion, "credentials never written")
	assert.Equal(t, sec.Data, gotSec.Data)
}

// The exact layout v0.1.0 (commit ad02d28) wrote, taken from its
// pkg/kube/record: no schemaVersion key, no schema annotation on the Secret.
func v010Record(ns string) (*corev1.ConfigMap, *corev1.Secret) {
	meta := ownedMeta(ns, "sc-conn-legacy", "legacy", nil)
	meta.Finalizers = []string{"sc-extension.io/status"}
	cm := &corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{
		"spec":               `{"name":"legacy","scope":"team-a","targetService":{"type":"storage-blob","id":"/subscriptions/x"},"authInfo":{"authType":"secret"},"configurations":[{"name":"AZURE_STORAGEBLOB_CONNECTIONSTRING","value":"","credential":true}]}`,
		"generation":         "1",
		"credentialsVersion": "r1",
		"status":             `{"phase":"Succeeded","reason":"Rendered","message":"rendered generation 1: 1 created, 0 updated, 0 unchanged","observedGeneration":1,"lastRequestId":"r1","resources":[{"kind":"Secret","namespace":"team-a","name":"sc-legacy-secret"}],"owned":[{"kind":"Secret","namespace":"team-a","name":"sc-legacy-secret","uid":"6f1c2d3e-0000-4000-8000-000000000001"}],"updatedAt":"2025-11-03T10:00:00Z","seq":3,"incarnation":"LEGACYINCARNATION0000000001"}`,
		"recentRequestIds":   `["r1"]`,
	}}
	sec := &corev1.Secret{
		ObjectMeta: ownedMeta(ns, "sc-conn-legacy-cred", "legacy", map[string]string{"servicelinker.sc-extension.io/credentials-version": "r1"}),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"AZURE_STORAGEBLOB_CONNECTIONSTRING": []byte("cred-VALUE-legacy")},
	}
	return cm, sec
}

// A v0.1.0 record reads with every field, is not rewritten by a write
// that changes nothing, and its next ordinary write stamps schemaVersion 1
// and keeps every other field.
func TestAV010RecordMigratesOnItsNextWrite(t *testing.T) {
	cs := kubetest.New(t).Clientset
	ns := kubetest.Namespace(t)
	release(t, ns)
	ctx := context.Background()
	legacyCM, legacySec := v010Record(ns)
	require.Equal(t, "legacy", connection.ObjectID("legacy"))
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, legacyCM, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Secrets(ns).Create(ctx, legacySec, metav1.CreateOptions{})
	require.NoError(t, err)

	s := store.New(cs, ns)
	c, err := s.Get(ctx, "legacy")
	require.NoError(t, err)
	assert.EqualValues(t, 1, c.Generation)
	assert.Equal(t, "r1", c.CredentialsVersion)
	assert.Equal(t, []string{"r1"}, c.RecentRequestIDs)
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase)
	assert.EqualValues(t, 3, c.Status.Seq)
	assert.Equal(t, "LEGACYINCARNATION0000000001", c.Status.Incarnation)
	assert.True(t, c.Status.UpdatedAt.Equal(time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)))
	uid, ok := c.Status.OwnedUID(connection.ResourceRef{Kind: "Secret", Namespace: "team-a", Name: "sc-legacy-secret"})
	assert.True(t, ok)
	assert.EqualValues(t, "6f1c2d3e-0000-4000-8000-000000000001", uid)
	creds, err := s.Credentials(ctx, c)
	require.NoError(t, err)
	assert.Equal(t, "cred-VALUE-legacy", creds["AZURE_STORAGEBLOB_CONNECTIONSTRING"])

	// nothing to change: no write only to migrate
	require.NoError(t, s.Wake(ctx, "legacy", "NamespaceCreated", "x"))
	_, applied, err := s.Apply(ctx, change("legacy", "r1", "team-a", "cred-VALUE-legacy"))
	require.NoError(t, err)
	assert.False(t, applied)
	same, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, cm.ResourceVersion, same.ResourceVersion)
	assert.NotContains(t, same.Data, record.KeySchemaVersion)

	// an ordinary write (drift) migrates it
	require.NoError(t, s.MarkPending(ctx, "legacy", "Drift", "Secret team-a/sc-legacy-secret deleted"))
	got, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotEqual(t, cm.ResourceVersion, got.ResourceVersion)
	assert.Equal(t, "1", got.Data["schemaVersion"])
	for _, k := range []string{"spec", "generation", "credentialsVersion", "recentRequestIds"} {
		assert.Equal(t, cm.Data[k], got.Data[k], "%s byte for byte", k)
	}
	assert.Len(t, got.Data, len(cm.Data)+1, "one key more, none lost")
	assert.Equal(t, cm.Labels, got.Labels)
	assert.Equal(t, cm.Annotations, got.Annotations)
	assert.Equal(t, cm.Finalizers, got.Finalizers)
	// the status keeps every field but what the drift write changes
	var before, after map[string]any
	require.NoError(t, json.Unmarshal([]byte(cm.Data["status"]), &before))
	require.NoError(t, json.Unmarshal([]byte(got.Data["status"]), &after))
	assert.Equal(t, "Pending", after["phase"])
	assert.Equal(t, "Drift", after["reason"])
	assert.EqualValues(t, 4, after["seq"])
	for _, k := range []string{"phase", "reason", "message", "seq", "updatedAt"} {
		delete(before, k)
		delete(after, k)
	}
	assert.Equal(t, before, after)

	// the credential Secret migrates when its values are next written
	_, _, err = s.Apply(ctx, change("legacy", "r2", "team-a", "cred-VALUE-legacy-2"))
	require.NoError(t, err)
	gotSec, err := cs.CoreV1().Secrets(ns).Get(ctx, legacySec.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "1", gotSec.Annotations["servicelinker.sc-extension.io/schema-version"])
	assert.Equal(t, "r2", gotSec.Annotations["servicelinker.sc-extension.io/credentials-version"])
}
