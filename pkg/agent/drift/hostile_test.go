package drift

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// hostileSecret is what a tenant may create: a Secret carrying the
// user-settable managed-by label, with large data and a large annotation.
func hostileSecret(namespace, name string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, ResourceVersion: "1",
			Labels:      map[string]string{connection.LabelManagedBy: connection.ManagedByValue},
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("a", 200<<10)}},
		Data: map[string][]byte{"blob": []byte(strings.Repeat("x", 64<<10))},
	}
}

// The exact reads of one change: the first look at our rendered Secret
// reads it once, a repeated event for the same version reads nothing, and
// an edit (a new version) is read once and marks the connection Pending.
func TestChangeOfRenderedSecretIsReadOnce(t *testing.T) {
	a := succeeded("a", "")
	store := newStore(a)
	f := newFixture(t, store, anywhere)
	ours := renderedSecret("a", credValue())
	f.index(recordCM(t, a), ours)
	key := objectKey{Kind: KindSecret, Namespace: "team-a", Name: "sc-a-secret"}

	require.NoError(t, f.c.sync(context.Background(), key))
	require.NoError(t, f.c.sync(context.Background(), key)) // a resync or a new term's list: same version
	assert.Equal(t, []string{"get secrets team-a/sc-a-secret"}, f.reads(), "a verified version is not read again")
	assert.Empty(t, store.calls())

	edited := ours.DeepCopy()
	edited.Data["AZURE_STORAGEBLOB_CONNECTIONSTRING"] = []byte(credValue())
	edited.ResourceVersion = "2"
	f.index(edited)
	require.NoError(t, f.c.sync(context.Background(), key))
	assert.Equal(t, []string{"get secrets team-a/sc-a-secret", "get secrets team-a/sc-a-secret"}, f.reads(), "one read for the change")
	assert.Equal(t, []markCall{{ID: "a", Reason: ReasonDrift,
		Message: "Secret team-a/sc-a-secret was modified (data changed since sc-job rendered it (hash mismatch)); rendering it again"}}, store.calls())
}

// Labelled objects no record claims are never read, whatever their name:
// a name outside sc-job's patterns is not even queued, and one inside them
// is dropped once the records show no settled connection claims it.
func TestForeignLabelledObjectsAreNeverRead(t *testing.T) {
	a := succeeded("a", clientID)
	store := newStore(a)
	f := newFixture(t, store, anywhere)
	f.index(recordCM(t, a), renderedSecret("a", credValue()), renderedSA(clientID))

	foreign := []*metav1.PartialObjectMetadata{
		partial(t, hostileSecret("team-a", "creds")),       // not a rendered name
		partial(t, hostileSecret("team-a", "sc-b-secret")), // a rendered name nobody claims
		partial(t, hostileSecret("team-b", "sc-a-secret")), // a's name in a namespace a does not render into
		partial(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{ // another client id
			Namespace: "team-a", Name: connection.ServiceAccountName("11111111-0000-4000-8000-000000000000"), ResourceVersion: "1",
			Labels: map[string]string{connection.LabelManagedBy: connection.ManagedByValue}}}),
		partial(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "default", ResourceVersion: "1",
			Labels: map[string]string{connection.LabelManagedBy: connection.ManagedByValue}}}),
	}
	for _, o := range foreign {
		f.c.objectHandler(o.Kind).OnAdd(o, false)
		updated := o.DeepCopy()
		updated.ResourceVersion = "2"
		f.c.objectHandler(o.Kind).OnUpdate(o, updated)
		f.c.objectHandler(o.Kind).OnDelete(updated)
	}
	assert.Equal(t, 3, f.c.worker.Queue().Len(), "only names sc-job renders are queued")
	for f.c.worker.Queue().Len() > 0 {
		require.True(t, f.c.worker.ProcessNextWorkItem(context.Background()))
	}
	assert.Empty(t, f.reads(), "no foreign object is read")
	assert.Empty(t, store.calls())
	assert.Empty(t, f.events())
}

// The watch path with a tenant's labelled Secrets: they sit in drift's
// cache as bare identities (no data, labels or annotations), are never read,
// and a real drift among them is still caught.
func TestHostileSecretsStayMetadataAndUnread(t *testing.T) {
	const hostile = 40
	a := succeeded("a", "")
	store := newStore(a)
	objs := []runtime.Object{recordCM(t, a), renderedSecret("a", credValue())}
	for i := range hostile {
		ns := []string{"team-a", "team-x"}[i%2]
		name := fmt.Sprintf("sc-h%d-secret", i) // the rendered pattern: queued and looked up, never read
		if i%4 == 0 {
			name = fmt.Sprintf("junk-%d", i)
		}
		objs = append(objs, hostileSecret(ns, name))
	}
	f := newFixture(t, store, anywhere, objs...)
	// The mark may come from the initial list's event for sc-a-secret,
	// synced after the deletion below but before the watch delivered it:
	// the cache is inspected only once the informer dropped the object,
	// which it does before notifying any handler.
	gone := make(chan struct{}, 1)
	_, err := f.inf.secrets[0].Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if m, ok := obj.(metav1.Object); ok && m.GetName() == "sc-a-secret" {
			gone <- struct{}{}
		}
	}})
	require.NoError(t, err)
	f.run()

	// One informer, one handler, one FIFO queue: the hostile objects of the
	// initial list are processed before this deletion.
	f.remove(KindSecret, "team-a", "sc-a-secret")
	assert.Equal(t, "a", f.waitMark().ID)
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the deletion never reached drift's cache")
	}

	for _, r := range f.reads() {
		assert.Equal(t, "get secrets team-a/sc-a-secret", r, "only the claimed Secret is read")
	}
	cached := f.inf.Cached()
	assert.Len(t, cached, hostile, "the tenant's Secrets are watched (the label selects them), the deleted one is gone")
	for _, o := range cached {
		m, ok := o.(*metav1.PartialObjectMetadata)
		require.True(t, ok, "%T cached", o)
		assert.Empty(t, m.Annotations, "%s: annotations dropped", m.Name)
		assert.Empty(t, m.Labels, "%s: labels dropped", m.Name)
		assert.Empty(t, m.ManagedFields)
		assert.NotEmpty(t, m.ResourceVersion)
	}
}
