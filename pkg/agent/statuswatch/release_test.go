package statuswatch

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// honourReleasePatch makes client apply Release's merge patch as the API
// server does (proven in ./integration): its resourceVersion is a
// precondition, its finalizers replace the record's, and a terminating
// record left without finalizers is deleted. client-go's fake applies
// patches without either (records.HonourFinalizers covers updates only).
func honourReleasePatch(client *fake.Clientset) {
	gvr := corev1.SchemeGroupVersion.WithResource("configmaps")
	tracker := client.Tracker()
	client.PrependReactor("patch", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchAction)
		if pa.GetPatchType() != types.MergePatchType {
			return false, nil, nil
		}
		var p releasePatch
		if err := json.Unmarshal(pa.GetPatch(), &p); err != nil {
			return true, nil, apierrors.NewBadRequest(err.Error())
		}
		obj, err := tracker.Get(gvr, pa.GetNamespace(), pa.GetName())
		if err != nil {
			return true, nil, err
		}
		cm := obj.(*corev1.ConfigMap).DeepCopy()
		if p.Metadata.ResourceVersion != "" && p.Metadata.ResourceVersion != cm.ResourceVersion {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), cm.Name, fmt.Errorf("the object has been modified"))
		}
		cm.Finalizers = p.Metadata.Finalizers
		if cm.DeletionTimestamp != nil && len(cm.Finalizers) == 0 {
			return true, cm, tracker.Delete(gvr, cm.Namespace, cm.Name)
		}
		var n int
		_, _ = fmt.Sscanf(cm.ResourceVersion, "%d", &n)
		cm.ResourceVersion = fmt.Sprint(n + 1)
		return true, cm, tracker.Update(gvr, cm, cm.Namespace)
	})
}

// The release is one merge patch of metadata.finalizers, guarded by the
// resourceVersion decided on; other finalizers stay, no data is sent.
func TestReleasePatchesOnlyTheFinalizersOfTheVersionDecidedOn(t *testing.T) {
	cm := terminating(t)
	cm.ResourceVersion = "7"
	cm.Finalizers = []string{"example.com/first", record.Finalizer, "example.com/last"}
	client := fake.NewClientset(cm)
	honourReleasePatch(client)

	require.NoError(t, Release(context.Background(), client, cm))

	acts := client.Actions()
	require.Equal(t, []string{"patch configmaps sc-system/sc-conn-blob1"}, fakeactions.Of(client))
	pa := acts[0].(k8stesting.PatchAction)
	assert.Equal(t, types.MergePatchType, pa.GetPatchType())
	assert.JSONEq(t, `{"metadata":{"resourceVersion":"7","finalizers":["example.com/first","example.com/last"]}}`, string(pa.GetPatch()))
	got, err := client.CoreV1().ConfigMaps(ns).Get(context.Background(), cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"example.com/first", "example.com/last"}, got.Finalizers)
	assert.Equal(t, cm.Data, got.Data)
}

// The last finalizer is released with null, which removes the list.
func TestReleaseOfTheLastFinalizerSendsNull(t *testing.T) {
	cm := terminating(t)
	cm.ResourceVersion = "3"
	client := fake.NewClientset(cm)
	honourReleasePatch(client)

	require.NoError(t, Release(context.Background(), client, cm))

	pa := client.Actions()[0].(k8stesting.PatchAction)
	assert.JSONEq(t, `{"metadata":{"resourceVersion":"3","finalizers":null}}`, string(pa.GetPatch()))
	_, err := client.CoreV1().ConfigMaps(ns).Get(context.Background(), cm.Name, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "a terminating record without finalizers is gone")
}

// A version older than the record's is not released: Conflict, which the
// worker retries from the newer version. A record gone already is released.
func TestReleaseOfAStaleVersionConflicts(t *testing.T) {
	cm := terminating(t)
	cm.ResourceVersion = "3"
	client := fake.NewClientset(cm)
	honourReleasePatch(client)
	stale := cm.DeepCopy()
	stale.ResourceVersion = "2"

	err := Release(context.Background(), client, stale)
	require.True(t, apierrors.IsConflict(err), "%v", err)
	got, err := client.CoreV1().ConfigMaps(ns).Get(context.Background(), cm.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{record.Finalizer}, got.Finalizers, "still held")

	gone := terminating(t)
	gone.Name = "sc-conn-gone"
	require.NoError(t, Release(context.Background(), client, gone))
}

// A record whose finalizers change after the watch decided is not
// released by the stale decision: the sync meets a Conflict, and a later
// one, on the newer version, releases what that version says. (Until the
// informer delivers the newer version, a retry may meet the same
// Conflict again.)
func TestFinishRetriesFromTheNewerVersionAfterAConflict(t *testing.T) {
	cm := terminating(t)
	cm.ResourceVersion = "1"
	cm.Finalizers = []string{record.Finalizer, "example.com/other"}
	var (
		e    *env
		once sync.Once
	)
	e = start(t, func(p Publisher) Publisher {
		return publisherFunc(func(ctx context.Context, ev protocol.StatusEvent) error {
			if err := p.Publish(ctx, ev); err != nil {
				return err
			}
			// Another controller drops its finalizer between the decision
			// and the release: the version published is stale.
			once.Do(func() {
				cur, err := e.client.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
				if assert.NoError(t, err) {
					cur.Finalizers = []string{record.Finalizer}
					_, err = e.client.CoreV1().ConfigMaps(ns).Update(ctx, cur, metav1.UpdateOptions{})
					assert.NoError(t, err)
				}
			})
			return nil
		})
	}, cm)
	assert.Equal(t, "Deleted", e.next().Reason)
	e.gone(cm.Name)
	e.stop()

	var patches []string
	for _, a := range e.client.Actions() {
		if pa, ok := a.(k8stesting.PatchAction); ok {
			patches = append(patches, string(pa.GetPatch()))
		}
	}
	require.GreaterOrEqual(t, len(patches), 2, "the stale release, then the one of the newer version")
	for _, p := range patches[:len(patches)-1] {
		assert.JSONEq(t, `{"metadata":{"resourceVersion":"1","finalizers":["example.com/other"]}}`, p, "refused: stale")
	}
	assert.JSONEq(t, `{"metadata":{"resourceVersion":"2","finalizers":null}}`, patches[len(patches)-1])
	writes := fakeactions.Writes(e.client.Actions())
	assert.Equal(t, "update configmaps sc-system/sc-conn-blob1", writes[0], "the other controller's")
	assert.EqualValues(t, 1, e.streamed(), "the Deleted event re-published after the conflict is deduplicated")
}

type publisherFunc func(context.Context, protocol.StatusEvent) error

func (f publisherFunc) Publish(ctx context.Context, ev protocol.StatusEvent) error { return f(ctx, ev) }
