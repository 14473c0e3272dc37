package jobrun

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
)

// Run 1 creates the Secret and the ServiceAccount and is killed before any
// status write lands (from the creates on, every record update fails, as
// if the pod were gone). Nothing records the objects' UIDs; run 2, a new
// pod, adopts them by their creator token and converges.
func TestRunKilledBeforeItsStatusWriteConvergesNextRun(t *testing.T) {
	f := newFixture(t)
	f.apply(f.wiChange("kv1"))
	dead := false
	f.client.PrependReactor("create", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
		dead = true // the create itself goes through
		return false, nil, nil
	})
	f.client.PrependReactor("update", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if dead && a.GetNamespace() == sys {
			return true, nil, errors.New("pod killed")
		}
		return false, nil, nil
	})
	sum, err := f.runner().Run(context.Background())
	require.ErrorIs(t, err, ErrFailed, "its outcome could not be recorded: the run fails and keeps its Job")
	assert.Equal(t, 1, sum.StillPending)
	require.True(t, dead, "run 1 created the ServiceAccount")
	c := f.get("kv1")
	require.Empty(t, c.Status.Owned, "no UID was recorded")
	require.NotEqual(t, connection.PhaseSucceeded, c.Status.Phase)
	require.NotEmpty(t, f.uid(secretRef("kv1")))

	dead = false
	f.client.ClearActions()
	_, err = f.runner().Run(context.Background())
	require.NoError(t, err, f.out.String())
	c = f.get("kv1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase, c.Status.Message)
	assert.Equal(t, []connection.OwnedObject{
		{ResourceRef: secretRef("kv1"), UID: f.uid(secretRef("kv1"))},
		{ResourceRef: saRef(), UID: f.uid(saRef())},
	}, c.Status.Owned)
	for _, a := range f.client.Actions() {
		assert.False(t, a.GetVerb() == "create" && a.GetNamespace() == target, "run 2 recreates nothing: %v", a)
		assert.False(t, a.GetVerb() == "delete" && a.GetNamespace() == target, "run 2 deletes nothing: %v", a)
	}
}

// The creator token is stamped by the run, not copied from anything a
// tenant can read: a look-alike carrying the token of another object is
// still refused.
func TestRunLookAlikeWithAnotherObjectsTokenFails(t *testing.T) {
	f := newFixture(t)
	f.apply(f.secretChange("db1"))
	c := f.get("db1")
	require.NotEmpty(t, c.RecordUID)
	spoof := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: "sc-db1-secret",
		Labels:      map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: "db1"},
		Annotations: map[string]string{apply.AnnotationCreator: apply.Token(c.RecordUID, secretRef("db2"))}}}
	_, err := f.client.CoreV1().Secrets(target).Create(context.Background(), spoof, metav1.CreateOptions{})
	require.NoError(t, err)

	_, err = f.runner().Run(context.Background())
	require.ErrorIs(t, err, ErrFailed)
	got := f.get("db1")
	assert.Equal(t, ReasonSecretIsOwned, got.Status.Reason)
	assert.Empty(t, got.Status.Owned)
}
