package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

const (
	ns        = "sc-system"
	credValue = "cred-VALUE-store-5e1d"
)

func change(reqID string) connection.Change {
	return connection.Change{
		RequestID: reqID,
		Spec: connection.Spec{
			Name: "Blob_1", Scope: "team-a",
			TargetService:  connection.TargetService{Type: catalog.TargetStorageBlob, ID: "/subscriptions/x"},
			AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
			Configurations: []connection.Configuration{{Name: "AZURE_STORAGEBLOB_CONNECTIONSTRING", Credential: true}},
		},
		Credentials: connection.Credentials{"AZURE_STORAGEBLOB_CONNECTIONSTRING": credValue},
	}
}

func newStore(objs ...runtime.Object) (*Store, *fake.Clientset) {
	cs := fake.NewClientset(objs...)
	s := New(cs, ns)
	s.now = func() time.Time { return time.Unix(1700000000, 0).UTC() }
	return s, cs
}

func TestApplyCreateWritesSecretThenRecord(t *testing.T) {
	s, cs := newStore()
	c, applied, err := s.Apply(context.Background(), change("r1"))
	require.NoError(t, err)
	assert.True(t, applied)
	id := connection.ObjectID("Blob_1")
	assert.Equal(t, []string{
		"get configmaps sc-system/sc-conn-" + id,
		"get secrets sc-system/sc-conn-" + id + "-cred",
		"create secrets sc-system/sc-conn-" + id + "-cred",
		"create configmaps sc-system/sc-conn-" + id,
	}, fakeactions.Of(cs), "two writes per created connection, the Secret first")
	assert.EqualValues(t, 1, c.Generation)
	assert.Equal(t, connection.PhasePending, c.Status.Phase)
	assert.Equal(t, "r1", c.Status.LastRequestID)

	cm, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), connection.ConfigMapName(id), metav1.GetOptions{})
	require.NoError(t, err)
	for k, v := range cm.Data {
		assert.NotContains(t, v, credValue, "ConfigMap key %s holds a credential", k)
	}
	assert.Equal(t, "sc-extension", cm.Labels[connection.LabelManagedBy])
	got, err := record.Decode(cm)
	require.NoError(t, err)
	assert.Equal(t, c, got)

	creds, err := s.Credentials(context.Background(), got)
	require.NoError(t, err)
	assert.Equal(t, credValue, creds["AZURE_STORAGEBLOB_CONNECTIONSTRING"])
}

// A connection without credentials (workload identity) has no credential
// Secret: its record, with its first status, is its one write.
func TestApplyCreateWithoutCredentialsWritesOnlyTheRecord(t *testing.T) {
	s, cs := newStore()
	ch := change("r1")
	ch.Spec.AuthInfo = connection.AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: "00000000-0000-4000-8000-0000000000ab"}
	ch.Spec.Configurations = []connection.Configuration{{Name: "AZURE_STORAGEBLOB_CLIENTID", Value: "00000000-0000-4000-8000-0000000000ab"}}
	ch.Credentials = nil
	c, applied, err := s.Apply(context.Background(), ch)
	require.NoError(t, err)
	assert.True(t, applied)
	id := connection.ObjectID("Blob_1")
	assert.Equal(t, []string{"get configmaps sc-system/sc-conn-" + id, "create configmaps sc-system/sc-conn-" + id}, fakeactions.Of(cs))
	assert.Equal(t, connection.PhasePending, c.Status.Phase, "the first status rides on the create")
	assert.Empty(t, c.CredentialsVersion)
}

func TestApplySameRequestTwiceAppliesOnce(t *testing.T) {
	s, cs := newStore()
	_, _, err := s.Apply(context.Background(), change("r1"))
	require.NoError(t, err)
	cs.ClearActions()
	c, applied, err := s.Apply(context.Background(), change("r1"))
	require.NoError(t, err)
	assert.False(t, applied)
	assert.EqualValues(t, 1, c.Generation)
	assert.Equal(t, []string{"get configmaps sc-system/sc-conn-" + connection.ObjectID("Blob_1")}, fakeactions.Of(cs), "a redelivery only reads")
}

func TestApplyIdenticalChangeKeepsGeneration(t *testing.T) {
	s, cs := newStore()
	ctx := context.Background()
	_, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	_, err = s.UpdateStatus(ctx, connection.ObjectID("Blob_1"), func(c *connection.Connection) error {
		c.Status.Phase = connection.PhaseSucceeded
		return nil
	})
	require.NoError(t, err)
	cs.ClearActions()

	c, applied, err := s.Apply(ctx, change("r2"))
	require.NoError(t, err)
	assert.True(t, applied)
	assert.EqualValues(t, 1, c.Generation, "same spec and credentials: no new generation")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase, "nothing to render again")
	assert.Equal(t, "r2", c.Status.LastRequestID, "but the request is answered")
	id := connection.ObjectID("Blob_1")
	assert.Equal(t, []string{"get configmaps sc-system/sc-conn-" + id, "get secrets sc-system/sc-conn-" + id + "-cred", "update configmaps sc-system/sc-conn-" + id}, fakeactions.Of(cs))
}

func TestApplyRotatedCredentialBumpsGeneration(t *testing.T) {
	s, _ := newStore()
	ctx := context.Background()
	_, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	ch := change("r2")
	ch.Credentials["AZURE_STORAGEBLOB_CONNECTIONSTRING"] = "cred-VALUE-rotated"
	c, _, err := s.Apply(ctx, ch)
	require.NoError(t, err)
	assert.EqualValues(t, 2, c.Generation)
	creds, err := s.Credentials(ctx, c)
	require.NoError(t, err)
	assert.Equal(t, "cred-VALUE-rotated", creds["AZURE_STORAGEBLOB_CONNECTIONSTRING"])
}

func TestApplyConflictIsRetriedByRereading(t *testing.T) {
	s, cs := newStore()
	ctx := context.Background()
	_, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	conflicts := 1
	cs.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(corev1.Resource("configmaps"), "x", errors.New("stale"))
		}
		return false, nil, nil
	})
	cs.ClearActions()
	ch := change("r2")
	ch.Spec.Scope = "team-b"
	c, _, err := s.Apply(ctx, ch)
	require.NoError(t, err)
	assert.EqualValues(t, 2, c.Generation)
	id := connection.ObjectID("Blob_1")
	get, sec, upd := "get configmaps sc-system/sc-conn-"+id, "get secrets sc-system/sc-conn-"+id+"-cred", "update configmaps sc-system/sc-conn-"+id
	assert.Equal(t, []string{get, sec, upd, get, sec, upd}, fakeactions.Of(cs), "the conflict re-reads before writing again")
}

func TestApplyCredentialWriteFailureLeavesNoRecord(t *testing.T) {
	s, cs := newStore()
	cs.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
	})
	_, _, err := s.Apply(context.Background(), change("r1"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), credValue)
	_, err = s.Get(context.Background(), connection.ObjectID("Blob_1"))
	assert.ErrorIs(t, err, ErrNotFound, "no record without its credentials")
}

func TestRecordWriteFailureIsSeenAsStale(t *testing.T) {
	s, cs := newStore()
	ctx := context.Background()
	c, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	cs.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
	})
	ch := change("r2")
	ch.Credentials["AZURE_STORAGEBLOB_CONNECTIONSTRING"] = "cred-VALUE-half"
	_, _, err = s.Apply(ctx, ch)
	require.Error(t, err)
	// the credential Secret was rewritten, the record was not: a reader must not mix them
	_, err = s.Credentials(ctx, c)
	assert.ErrorIs(t, err, ErrCredentialsStale)
}

func TestDeleteUnknownIsNotFound(t *testing.T) {
	s, _ := newStore()
	ch := change("r1")
	ch.Delete, ch.Credentials = true, nil
	_, _, err := s.Apply(context.Background(), ch)
	assert.ErrorIs(t, err, ErrNotFound)
	assert.True(t, IsNotFound(err))
}

func TestDeleteMarksPendingDeletion(t *testing.T) {
	s, _ := newStore()
	ctx := context.Background()
	_, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	ch := change("r2")
	ch.Delete, ch.DeleteResources, ch.Credentials = true, true, nil
	c, applied, err := s.Apply(ctx, ch)
	require.NoError(t, err)
	assert.True(t, applied)
	assert.Equal(t, &connection.Deletion{RequestID: "r2", DeleteResources: true}, c.Deletion)
	assert.Equal(t, connection.PhasePending, c.Status.Phase)

	require.NoError(t, s.Remove(ctx, c.Spec.ID()))
	_, err = s.Get(ctx, c.Spec.ID())
	assert.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, s.Remove(ctx, c.Spec.ID()), "removing twice is fine")
}

func TestMarkPendingSkipsDeletionsAndPendingWork(t *testing.T) {
	s, cs := newStore()
	ctx := context.Background()
	c, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	cs.ClearActions()
	require.NoError(t, s.MarkPending(ctx, c.Spec.ID(), "Drift", "gone"))
	assert.Equal(t, []string{"get configmaps sc-system/sc-conn-" + c.Spec.ID()}, fakeactions.Of(cs), "already pending: no write")

	_, err = s.UpdateStatus(ctx, c.Spec.ID(), func(c *connection.Connection) error { c.Status.Phase = connection.PhaseSucceeded; return nil })
	require.NoError(t, err)
	require.NoError(t, s.MarkPending(ctx, c.Spec.ID(), "Drift", "Secret deleted"))
	got, err := s.Get(ctx, c.Spec.ID())
	require.NoError(t, err)
	assert.Equal(t, connection.PhasePending, got.Status.Phase)
	assert.Equal(t, "Drift", got.Status.Reason)
}

func TestListReportsCorruptRecords(t *testing.T) {
	bad := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "sc-conn-bad", Namespace: ns,
		Labels: map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: "bad"}}, Data: map[string]string{"spec": "{"}}
	s, _ := newStore(bad)
	_, _, err := s.Apply(context.Background(), change("r1"))
	require.NoError(t, err)
	list, err := s.List(context.Background())
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.Len(t, list, 1, "good records are still returned")
}

// A request re-created the connection after sc-job applied its deletion:
// Remove must keep the new record and its credentials.
func TestRemoveKeepsARecreatedConnection(t *testing.T) {
	s, _ := newStore()
	ctx := context.Background()
	_, _, err := s.Apply(ctx, change("r1"))
	require.NoError(t, err)
	del := change("r2")
	del.Delete, del.Credentials = true, nil
	_, _, err = s.Apply(ctx, del)
	require.NoError(t, err)
	_, _, err = s.Apply(ctx, change("r3")) // re-created before Remove ran
	require.NoError(t, err)

	id := connection.ObjectID("Blob_1")
	require.ErrorIs(t, s.Remove(ctx, id), ErrNotDeleting)
	c, err := s.Get(ctx, id)
	require.NoError(t, err)
	_, err = s.Credentials(ctx, c)
	assert.NoError(t, err, "credentials of the re-created connection kept")
}

// Found by the e2e suite: an agent shutting down got (zero, false, nil) from
// Apply when the API call failed with a context error, took it for a
// duplicate, acked, and the request was lost.
func TestApplyNeverHidesAContextError(t *testing.T) {
	s, cs := newStore()
	cs.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, context.Canceled
	})
	_, applied, err := s.Apply(context.Background(), change("r1"))
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, applied)
	_, err = s.UpdateStatus(context.Background(), "x", func(*connection.Connection) error { return nil })
	assert.ErrorIs(t, err, context.Canceled)
}
