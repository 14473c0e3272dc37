//go:build integration

// Package integration proves apiwrites against a real API server: the
// recorder sees each write once, from its start and not before, in revision
// order, with its managers, and never keeps a Secret's data; the metric
// scrape counts the same requests, refused ones included.
package integration

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sc-extension/sc-extension/e2e/testbed/apiwrites"
	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

func TestRecorderCountsEachWriteOnceFromItsStart(t *testing.T) {
	k := kubetest.New(t)
	ns := kubetest.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cms := k.Clientset.CoreV1().ConfigMaps(ns)
	secrets := k.Clientset.CoreV1().Secrets(ns)
	label := map[string]string{"apiwrites-test": "yes"}
	opts := metav1.CreateOptions{FieldManager: "before-start"}

	// Written before the recorder starts: not counted.
	before, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before", Labels: label}}, opts)
	require.NoError(t, err)

	cmTarget := apiwrites.Target{Resource: apiwrites.ConfigMaps, Namespace: ns, LabelSelector: "apiwrites-test=yes"}
	secTarget := apiwrites.Target{Resource: apiwrites.Secrets, Namespace: ns, LabelSelector: "apiwrites-test=yes"}
	metricsBefore, err := apiwrites.Scrape(ctx, k.Clientset)
	require.NoError(t, err)
	rec, err := apiwrites.Start(ctx, k.Clientset, cmTarget, secTarget)
	require.NoError(t, err)
	defer rec.Stop()
	startRev, err := apiwrites.ParseRevision(before.ResourceVersion)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, rec.StartRevision(cmTarget), startRev, "the start is at or after the last write before it")

	// After: create, update, a refused (stale) update, an unlabelled
	// object, a Secret, a delete.
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after", Labels: label}}, metav1.CreateOptions{FieldManager: "writer-a"})
	require.NoError(t, err)
	stale := cm.DeepCopy()
	cm.Data = map[string]string{"k": "v"}
	cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "writer-b"})
	require.NoError(t, err)
	stale.Data = map[string]string{"k": "lost"}
	_, err = cms.Update(ctx, stale, metav1.UpdateOptions{FieldManager: "writer-b"})
	require.True(t, apierrors.IsConflict(err), "a stale update is refused: %v", err)
	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "unlabelled"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Labels: label},
		StringData: map[string]string{"password": "value-never-kept"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, cms.Delete(ctx, "before", metav1.DeleteOptions{}))
	last, err := apiwrites.Revision(ctx, k.Clientset, ns)
	require.NoError(t, err)

	// The last write of each watched stream: once seen, all before it were.
	require.NoError(t, rec.Await(ctx, func(ws []apiwrites.Write) bool {
		lastCM, secret := false, false
		for _, w := range ws {
			lastCM = lastCM || (w.Key.Name == "before" && w.Type == watch.Deleted)
			secret = secret || w.Key.Resource == apiwrites.Secrets
		}
		return lastCM && secret
	}))
	ws := rec.Writes()
	require.NoError(t, rec.Err())
	type seen struct {
		Key  apiwrites.Key
		Type watch.EventType
	}
	var got []seen
	for _, w := range ws {
		got = append(got, seen{w.Key, w.Type})
	}
	cmKey := func(name string) apiwrites.Key {
		return apiwrites.Key{Resource: apiwrites.ConfigMaps, Namespace: ns, Name: name}
	}
	secKey := apiwrites.Key{Resource: apiwrites.Secrets, Namespace: ns, Name: "s"}
	assert.ElementsMatch(t, []seen{
		{cmKey("after"), watch.Added}, {cmKey("after"), watch.Modified}, {cmKey("before"), watch.Deleted}, {secKey, watch.Added},
	}, got, "one event per write that took effect; the refused update and the unlabelled object are not writes of the targets")
	perObject := map[apiwrites.Key]int{}
	for _, w := range ws {
		perObject[w.Key]++
	}
	assert.Equal(t, map[apiwrites.Key]int{cmKey("after"): 2, cmKey("before"): 1, secKey: 1}, perObject)
	assert.Len(t, apiwrites.Between(ws, rec.StartRevision(cmTarget), last), 4, "every write is after the start and at most the revision read after them")

	var prev uint64
	for _, w := range ws {
		if w.Key.Resource != apiwrites.ConfigMaps {
			continue
		}
		assert.Greater(t, w.Revision, prev, "one resource's writes arrive in revision order")
		prev = w.Revision
		if w.Key.Name == "after" && w.Type == watch.Modified {
			assert.Equal(t, cm.ResourceVersion, w.ResourceVersion)
			m, err := meta.Accessor(w.Object)
			require.NoError(t, err)
			var managers []string
			for _, f := range m.GetManagedFields() {
				managers = append(managers, f.Manager)
				assert.NotNil(t, f.Time, "a manager's entry carries its time")
			}
			assert.ElementsMatch(t, []string{"writer-a", "writer-b"}, managers)
		}
		if s, ok := w.Object.(*corev1.Secret); ok {
			assert.Empty(t, s.Data, "a Secret is kept without its data")
		}
	}
	for _, w := range ws {
		if s, ok := w.Object.(*corev1.Secret); ok {
			assert.Nil(t, s.Data, "a Secret is kept without its data")
			assert.Nil(t, s.StringData)
		}
	}

	metricsAfter, err := apiwrites.Scrape(ctx, k.Clientset)
	require.NoError(t, err)
	d, err := metricsAfter.Sub(metricsBefore)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, d.Count("POST", apiwrites.ConfigMaps, ""), float64(2), "both creates")
	assert.GreaterOrEqual(t, d.Count("PUT", apiwrites.ConfigMaps, "409"), float64(1), "the refused update is a request the metric counts")
	assert.GreaterOrEqual(t, d.Count("DELETE", apiwrites.ConfigMaps, ""), float64(1))
	t.Logf("requests served meanwhile: %s", d.Summary())
}

func TestRecorderRefusesAnUnsupportedResource(t *testing.T) {
	k := kubetest.New(t)
	_, err := apiwrites.Start(context.Background(), k.Clientset, apiwrites.Target{Resource: "pods", Namespace: "default"})
	assert.ErrorContains(t, err, "not supported")
}
