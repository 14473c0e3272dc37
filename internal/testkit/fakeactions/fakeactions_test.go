package fakeactions_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8srecord "k8s.io/client-go/tools/record"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
)

func TestFormatNamesEveryKindOfAction(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}}
	_, err := cs.CoreV1().ConfigMaps("ns").Create(ctx, cm, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ConfigMaps("ns").Get(ctx, "a", metav1.GetOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ConfigMaps("ns").Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ConfigMaps("ns").Patch(ctx, "a", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ConfigMaps("ns").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Events("ns").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "x.123"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, cs.CoreV1().ConfigMaps("ns").Delete(ctx, "a", metav1.DeleteOptions{}))

	assert.Equal(t, []string{
		"create configmaps ns/a", "get configmaps ns/a", "update configmaps ns/a", "patch configmaps ns/a",
		"list configmaps ns/", "create events ns/*", "delete configmaps ns/a",
	}, fakeactions.Of(cs))
	assert.Equal(t, []string{
		"create configmaps ns/a", "update configmaps ns/a", "patch configmaps ns/a",
		"create events ns/*", "delete configmaps ns/a",
	}, fakeactions.Writes(cs.Actions()))
	assert.Equal(t, []string{"get configmaps ns/a"},
		fakeactions.Format(fakeactions.Without(cs.Actions(), "create", "update", "patch", "list", "delete")))
}

func TestEventsDrainsWithoutBlocking(t *testing.T) {
	r := k8srecord.NewFakeRecorder(4)
	assert.Empty(t, fakeactions.Events(r), "nothing recorded: returns at once")
	r.Event(&corev1.ConfigMap{}, corev1.EventTypeWarning, "Failed", "first")
	r.Event(&corev1.ConfigMap{}, corev1.EventTypeNormal, "Rendered", "second")
	assert.Equal(t, []string{"Warning Failed first", "Normal Rendered second"}, fakeactions.Events(r))
	assert.Empty(t, fakeactions.Events(r), "drained")
}
