package fakerv

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestStaleUpdateConflictsAndFreshOneLands(t *testing.T) {
	ctx := context.Background()
	client := Enforce(fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}}), "configmaps")
	cms := client.CoreV1().ConfigMaps("ns")
	first, err := cms.Get(ctx, "cm", metav1.GetOptions{})
	require.NoError(t, err)
	second := first.DeepCopy()

	first.Data = map[string]string{"k": "first"}
	got, err := cms.Update(ctx, first, metav1.UpdateOptions{})
	require.NoError(t, err)
	assert.Equal(t, "1", got.ResourceVersion)

	second.Data = map[string]string{"k": "second"}
	_, err = cms.Update(ctx, second, metav1.UpdateOptions{})
	assert.True(t, apierrors.IsConflict(err), "a write from the read before the first update: %v", err)

	_, err = cms.Update(ctx, got, metav1.UpdateOptions{})
	require.NoError(t, err, "a write from a fresh read lands")
	stored, err := cms.Get(ctx, "cm", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "first", stored.Data["k"])
	assert.Equal(t, "2", stored.ResourceVersion)
}
