//go:build integration

package drift_integration

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/record"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/agent/drift"
	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/kube/inspect"
	connrecord "github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// While no agent led, a tenant deleted the Secret sc-job created and put a
// copy in its place: same name, labels, annotations and data, so only the
// UID the API server gave it differs. Drift's start-up sweep reads it and
// marks the connection Pending (sc-job then refuses the copy). A labelled
// Secret in the release namespace never enters drift's cache.
func TestReplacedSecretIsDrift(t *testing.T) {
	k := kubetest.New(t)
	admin := k.Clientset
	agentNS := kubetest.Namespace(t, kubetest.Prefix("sc-system-"))
	targetNS := kubetest.Namespace(t, kubetest.Prefix("team-"))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	name := connection.SecretName("blob1")
	data := map[string][]byte{"AZURE_STORAGEBLOB_RESOURCEENDPOINT": []byte("https://acct.blob.core.windows.net/")}
	secret := func() *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name,
				Labels:      map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: "blob1"},
				Annotations: map[string]string{render.AnnotationDataHash: render.DataHash(data)}},
			Data: data,
		}
	}
	ours, err := admin.CoreV1().Secrets(targetNS).Create(ctx, secret(), metav1.CreateOptions{})
	require.NoError(t, err)
	ref := connection.ResourceRef{Kind: drift.KindSecret, Namespace: targetNS, Name: name}
	conn := connection.Connection{Spec: connection.Spec{Name: "blob1", Scope: targetNS}, Generation: 1,
		Status: connection.Status{Phase: connection.PhaseSucceeded, ObservedGeneration: 1, Resources: []connection.ResourceRef{ref}}}
	conn.Status.Own(ref, string(ours.UID))
	cm, err := connrecord.New(agentNS, conn)
	require.NoError(t, err)
	_, err = admin.CoreV1().ConfigMaps(agentNS).Create(ctx, cm, metav1.CreateOptions{})
	require.NoError(t, err)

	require.NoError(t, admin.CoreV1().Secrets(targetNS).Delete(ctx, name, metav1.DeleteOptions{}))
	copied, err := admin.CoreV1().Secrets(targetNS).Create(ctx, secret(), metav1.CreateOptions{})
	require.NoError(t, err)
	require.NotEqual(t, ours.UID, copied.UID)
	inRelease := secret()
	inRelease.Namespace = agentNS
	_, err = admin.CoreV1().Secrets(agentNS).Create(ctx, inRelease, metav1.CreateOptions{})
	require.NoError(t, err)

	meta, err := metadata.NewForConfig(k.Config)
	require.NoError(t, err)
	records := launcher.NewRecordsFactory(admin, agentNS, 0)
	policy := namespaces.Policy{Release: agentNS}
	inf := drift.NewInformers(meta, policy, 0)
	recorder := record.NewFakeRecorder(10)
	c, err := drift.New(drift.Deps{
		Namespace: agentNS, Records: records.Core().V1().ConfigMaps(), Informers: inf, Client: admin,
		Policy: policy, DriftOf: inspect.DriftOf, NotOurs: inspect.NotOurs, Store: store.New(admin, agentNS),
		Recorder: recorder, Metrics: health.NewMetrics(), Log: zerolog.New(zerolog.NewTestWriter(t)),
	})
	require.NoError(t, err)
	records.Start(ctx.Done())
	inf.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		records.Shutdown()
		inf.Shutdown()
	})

	want := "Secret " + targetNS + "/" + name + " was replaced (not the object sc-job created: its UID is " + string(copied.UID) +
		", the record holds " + string(ours.UID) + "); rendering it again"
	var got connection.Connection
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err = store.New(admin, agentNS).Get(ctx, connection.ObjectID("blob1"))
		return err == nil && got.Status.Phase == connection.PhasePending, err
	}), "the replaced Secret marks its connection Pending")
	assert.Equal(t, drift.ReasonDrift, got.Status.Reason)
	assert.Equal(t, want, got.Status.Message)
	assert.Equal(t, "Warning Drift "+want, <-recorder.Events)

	var cached []string
	for _, o := range inf.Cached() {
		m, ok := o.(*metav1.PartialObjectMetadata)
		require.True(t, ok, "drift caches %T", o)
		if m.Namespace == agentNS || m.Namespace == targetNS {
			cached = append(cached, m.Namespace+"/"+m.Name)
		}
	}
	assert.Equal(t, []string{targetNS + "/" + name}, cached, "the copy is watched; the release namespace's Secret is not")
}
