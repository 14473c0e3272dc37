//go:build integration

package store_integration

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// On a real API server: a removed record stays, terminating, until its
// finalizer is released (statuswatch does that after publishing Deleted);
// meanwhile the connection reads as gone and a create through the store is
// refused as transient; once released, the create applies as a new record.
func TestRemovedRecordIsHeldUntilReleased(t *testing.T) {
	cs := kubetest.New(t).Clientset
	ns := kubetest.Namespace(t)
	release(t, ns)
	s := store.New(cs, ns)
	ctx := context.Background()
	created, _, err := s.Apply(ctx, change("held", "r1", "team-a", "cred-VALUE-held"))
	require.NoError(t, err)
	del := change("held", "r2", "team-a", "")
	del.Delete, del.Credentials = true, nil
	_, _, err = s.Apply(ctx, del)
	require.NoError(t, err)
	id := created.Spec.ID()
	require.NoError(t, s.Remove(ctx, id))

	cms := cs.CoreV1().ConfigMaps(ns)
	cm, err := cms.Get(ctx, connection.ConfigMapName(id), metav1.GetOptions{})
	require.NoError(t, err, "the finalizer holds it")
	require.NotNil(t, cm.DeletionTimestamp)
	assert.Equal(t, []string{record.Finalizer}, cm.Finalizers)
	_, err = cs.CoreV1().Secrets(ns).Get(ctx, connection.CredentialSecretName(id), metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "its credentials are gone at once")

	_, err = s.Get(ctx, id)
	require.ErrorIs(t, err, store.ErrNotFound)
	recreate := change("held", "r3", "team-b", "cred-VALUE-held-2")
	_, _, err = s.Apply(ctx, recreate)
	require.ErrorIs(t, err, store.ErrTerminating)
	require.NoError(t, s.Remove(ctx, id), "removing it again changes nothing")
	again, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, cm.ResourceVersion, again.ResourceVersion, "nothing written while terminating")

	// what statuswatch does once Deleted is in the stream
	again.Finalizers = record.WithoutFinalizer(again)
	_, err = cms.Update(ctx, again, metav1.UpdateOptions{FieldManager: connection.FieldManager})
	require.NoError(t, err)
	_, err = cms.Get(ctx, cm.Name, metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "released: the API server deletes it")

	c, applied, err := s.Apply(ctx, recreate)
	require.NoError(t, err)
	assert.True(t, applied)
	assert.EqualValues(t, 1, c.Generation)
	assert.EqualValues(t, 1, c.Status.Seq)
	assert.NotEqual(t, created.Status.Incarnation, c.Status.Incarnation)
}

// A record written by the previous release (no finalizer) is held too.
func TestRemoveHoldsARecordWithoutTheFinalizer(t *testing.T) {
	cs := kubetest.New(t).Clientset
	ns := kubetest.Namespace(t)
	c := connection.Connection{Spec: change("legacy", "r1", "team-a", "").Spec, Generation: 1,
		Deletion: &connection.Deletion{RequestID: "r2"}, Status: connection.Status{Phase: connection.PhasePending, LastRequestID: "r2"}}
	cm, err := record.New(ns, c)
	require.NoError(t, err)
	cm.Finalizers = nil
	ctx := context.Background()
	_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	require.NoError(t, err)

	require.NoError(t, store.New(cs, ns).Remove(ctx, c.Spec.ID()))
	got, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotNil(t, got.DeletionTimestamp)
	assert.Equal(t, []string{record.Finalizer}, got.Finalizers)
	got.Finalizers = nil
	_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, got, metav1.UpdateOptions{})
	require.NoError(t, err, "release, so the namespace can go")
}

// release drops the finalizer of every record left in ns, as the agent
// would, so that the test namespace can be deleted.
func release(t *testing.T, ns string) {
	t.Cleanup(func() {
		cs := kubetest.New(t).Clientset
		ctx := context.Background()
		list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: record.Selector})
		require.NoError(t, err)
		for i := range list.Items {
			cm := &list.Items[i]
			cm.Finalizers = record.WithoutFinalizer(cm)
			_, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
			require.NoError(t, err)
		}
	})
}
