//go:build integration

package jobrun_integration

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/job/jobrun"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// ourLabels are what a tenant copies from any rendered object: labels prove
// nothing, which is the point.
func ourLabels(id string) map[string]string {
	l := map[string]string{connection.LabelManagedBy: connection.ManagedByValue}
	if id != "" {
		l[connection.LabelConnection] = id
	}
	return l
}

func (e *env) spoofSecret(name, id string) *corev1.Secret {
	e.t.Helper()
	s, err := e.client.CoreV1().Secrets(e.target).Create(e.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ourLabels(id)}, StringData: map[string]string{"theirs": "x"},
	}, metav1.CreateOptions{})
	require.NoError(e.t, err)
	return s
}

// A tenant pre-creates, with our labels, the Secret one connection renders
// and the ServiceAccount another renders. Neither is adopted (both
// connections fail, naming the object), and deleting both connections with
// --delete-resources removes only what sc-job created.
func TestSpoofedObjectsAreNeitherAdoptedNorDeleted(t *testing.T) {
	e := setup(t)
	spoofSec := e.spoofSecret("sc-db1-secret", "db1")
	spoofSA, err := e.client.CoreV1().ServiceAccounts(e.target).Create(e.ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: connection.ServiceAccountName(clientID), Labels: ourLabels("")},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	db1, kv1 := e.secretChange("db1"), e.wiChange("kv1")
	e.apply(db1)
	e.apply(kv1)

	_, err = e.runner().Run(e.ctx)
	require.ErrorIs(t, err, jobrun.ErrFailed)
	assert.Equal(t, jobrun.ReasonSecretIsOwned, e.get("db1").Status.Reason)
	assert.Equal(t, jobrun.ReasonServiceAccountIsOwned, e.get("kv1").Status.Reason)
	ownSecret, err := e.client.CoreV1().Secrets(e.target).Get(e.ctx, "sc-kv1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	uid, ok := e.get("kv1").Status.OwnedUID(connection.ResourceRef{Kind: render.KindSecret, Namespace: e.target, Name: "sc-kv1-secret"})
	require.True(t, ok, "the Secret kv1 created before the refusal is recorded")
	assert.Equal(t, string(ownSecret.UID), uid)

	for _, ch := range []connection.Change{db1, kv1} {
		e.apply(connection.Change{RequestID: e.requestID(), Spec: ch.Spec, Delete: true, DeleteResources: true})
	}
	sum, err := e.runner().Run(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, sum.Deleted)

	sec, err := e.client.CoreV1().Secrets(e.target).Get(e.ctx, spoofSec.Name, metav1.GetOptions{})
	require.NoError(t, err, "the tenant's Secret survives --delete-resources")
	assert.Equal(t, spoofSec.UID, sec.UID)
	assert.Equal(t, map[string][]byte{"theirs": []byte("x")}, sec.Data, "and was never written")
	sa, err := e.client.CoreV1().ServiceAccounts(e.target).Get(e.ctx, spoofSA.Name, metav1.GetOptions{})
	require.NoError(t, err, "the tenant's ServiceAccount survives --delete-resources")
	assert.Equal(t, spoofSA.UID, sa.UID)
	_, err = e.client.CoreV1().Secrets(e.target).Get(e.ctx, "sc-kv1-secret", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "what sc-job created is deleted: %v", err)
}

// The API server refuses a delete whose UID precondition names an object
// that was replaced, whatever its name and labels: the guarantee every
// delete of sc-job rests on.
func TestUIDPreconditionStopsDeletingAReplacedObject(t *testing.T) {
	e := setup(t)
	ours := e.spoofSecret("sc-db1-secret", "db1")
	replace := func() *corev1.Secret {
		require.NoError(t, e.client.CoreV1().Secrets(e.target).Delete(e.ctx, "sc-db1-secret", metav1.DeleteOptions{}))
		return e.spoofSecret("sc-db1-secret", "db1")
	}
	theirs := replace()
	err := e.client.CoreV1().Secrets(e.target).Delete(e.ctx, "sc-db1-secret",
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &ours.UID}})
	require.True(t, apierrors.IsConflict(err), "a UID precondition failure is a Conflict: %v", err)
	got, err := e.client.CoreV1().Secrets(e.target).Get(e.ctx, "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, theirs.UID, got.UID)

	// The same race inside apply.Delete: the object is read (its UID is
	// the recorded one), then replaced before the DELETE arrives. The API
	// server refuses the delete, the re-read finds a UID that is not ours,
	// and the replacement is kept.
	recorded := got
	var (
		once     sync.Once
		replaced *corev1.Secret
	)
	k := kubetest.New(t, func(c *rest.Config) {
		c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(req *http.Request) (*http.Response, error) {
				if req.Method == http.MethodDelete && strings.HasSuffix(req.URL.Path, "/secrets/sc-db1-secret") {
					once.Do(func() { replaced = replace() })
				}
				return rt.RoundTrip(req)
			})
		})
	})
	own := apply.Owner{ID: "db1", Owned: []connection.OwnedObject{{
		ResourceRef: connection.ResourceRef{Kind: render.KindSecret, Namespace: e.target, Name: "sc-db1-secret"}, UID: string(recorded.UID),
	}}}
	res, err := apply.New(k.Clientset, nil).Delete(e.ctx, own, []connection.ResourceRef{own.Owned[0].ResourceRef}, nil)
	require.NoError(t, err)
	require.NotNil(t, replaced, "the DELETE was sent after the read")
	assert.Equal(t, apply.Result{Kept: 1, Objects: []apply.Object{{Ref: own.Owned[0].ResourceRef, Outcome: apply.Kept}}}, res)
	got, err = e.client.CoreV1().Secrets(e.target).Get(e.ctx, "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err, "the replacement was not deleted")
	assert.Equal(t, replaced.UID, got.UID)
	assert.NotEqual(t, types.UID(""), got.UID)
}

// The upgrade path on a real API server: a record of an older release (no
// UIDs) that lists its Secret adopts it on the install/upgrade run and
// records the server's UID; from then on the UID decides.
func TestLegacyRecordAdoptsItsSecretOnce(t *testing.T) {
	e := setup(t)
	e.apply(e.secretChange("db1"))
	_, err := e.runner().Run(e.ctx)
	require.NoError(t, err)
	sec, err := e.client.CoreV1().Secrets(e.target).Get(e.ctx, "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	// An older release stamped no creator token: without it, only the
	// migration rule can adopt the Secret.
	delete(sec.Annotations, apply.AnnotationCreator)
	sec, err = e.client.CoreV1().Secrets(e.target).Update(e.ctx, sec, metav1.UpdateOptions{})
	require.NoError(t, err)
	_, err = e.store.UpdateStatus(e.ctx, "db1", func(c *connection.Connection) error {
		c.Status.Owned = nil // as an older release wrote it
		return nil
	})
	require.NoError(t, err)

	_, err = e.runner(func(c *jobrun.Config) { c.RenderAll = true }).Run(e.ctx)
	require.NoError(t, err)
	c := e.get("db1")
	assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase)
	assert.Equal(t, []connection.OwnedObject{{
		ResourceRef: connection.ResourceRef{Kind: render.KindSecret, Namespace: e.target, Name: "sc-db1-secret"}, UID: string(sec.UID),
	}}, c.Status.Owned)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
