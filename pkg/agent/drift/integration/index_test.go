//go:build integration

package drift_integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/record"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
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

const settledCount = 100

// renderedSecret is the Secret sc-job renders for connection id.
func renderedSecret(id string) *corev1.Secret {
	data := map[string][]byte{"AZURE_STORAGEBLOB_RESOURCEENDPOINT": []byte("https://" + id + ".blob.core.windows.net/")}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: connection.SecretName(id),
			Labels:      map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: id},
			Annotations: map[string]string{render.AnnotationDataHash: render.DataHash(data)}},
		Data: data,
	}
}

// Drift on a real API server looks records up by the objects they claim:
// among settledCount settled connections and a corrupt record, a record
// whose claim moved to another namespace is no longer found by its old
// Secret (deleting it reads nothing and marks nothing) and is found by its
// new one (deleting that marks it Pending). Every claimed Secret is read
// once, the corrupt record is logged once however many events drift
// handles, and nothing else is read.
func TestDriftFollowsTheIndexedClaim(t *testing.T) {
	k := kubetest.New(t, kubetest.QPS(100, 200))
	admin := k.Clientset
	agentNS := kubetest.Namespace(t, kubetest.Prefix("sc-system-"))
	oldNS := kubetest.Namespace(t, kubetest.Prefix("team-"))
	newNS := kubetest.Namespace(t, kubetest.Prefix("team-"))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	settle := func(name, ns string) connection.Connection {
		ref := connection.ResourceRef{Kind: drift.KindSecret, Namespace: ns, Name: connection.SecretName(connection.ObjectID(name))}
		return connection.Connection{Spec: connection.Spec{Name: name, Scope: ns}, Generation: 1,
			Status: connection.Status{Phase: connection.PhaseSucceeded, ObservedGeneration: 1, Resources: []connection.ResourceRef{ref}}}
	}
	createRecord := func(c connection.Connection) *corev1.ConfigMap {
		cm, err := connrecord.New(agentNS, c)
		require.NoError(t, err)
		cm, err = admin.CoreV1().ConfigMaps(agentNS).Create(ctx, cm, metav1.CreateOptions{})
		require.NoError(t, err)
		return cm
	}
	createSecret := func(ns, id string) {
		_, err := admin.CoreV1().Secrets(ns).Create(ctx, renderedSecret(id), metav1.CreateOptions{})
		require.NoError(t, err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, settledCount)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < settledCount; i += 8 {
				name := fmt.Sprintf("c%03d", i)
				cm, err := connrecord.New(agentNS, settle(name, oldNS))
				if err == nil {
					_, err = admin.CoreV1().ConfigMaps(agentNS).Create(ctx, cm, metav1.CreateOptions{})
				}
				if err == nil {
					_, err = admin.CoreV1().Secrets(oldNS).Create(ctx, renderedSecret(name), metav1.CreateOptions{})
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	bad, err := connrecord.New(agentNS, settle("bad", oldNS))
	require.NoError(t, err)
	bad.Data[connrecord.KeyStatus] = "{"
	_, err = admin.CoreV1().ConfigMaps(agentNS).Create(ctx, bad, metav1.CreateOptions{})
	require.NoError(t, err)
	moving := settle("moving", oldNS)
	createRecord(moving)
	createSecret(oldNS, "moving")
	createSecret(newNS, "moving") // not yet claimed by anyone

	var gets requestLog
	typed, err := kubernetes.NewForConfig(gets.wrap(k.Config))
	require.NoError(t, err)
	meta, err := metadata.NewForConfig(k.Config)
	require.NoError(t, err)
	logs := &devservertest.LogBuffer{}
	records := launcher.NewRecordsFactory(admin, agentNS, 0)
	policy := namespaces.Policy{Release: agentNS}
	inf := drift.NewInformers(meta, policy, 0)
	recorder := record.NewFakeRecorder(10)
	c, err := drift.New(drift.Deps{
		Namespace: agentNS, Records: records.Core().V1().ConfigMaps(), Informers: inf, Client: typed,
		Policy: policy, DriftOf: inspect.DriftOf, NotOurs: inspect.NotOurs, Store: store.New(admin, agentNS),
		Recorder: recorder, Metrics: health.NewMetrics(), Log: logs.Logger(),
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

	// The initial list: each claimed Secret is read once and found as
	// rendered; the Secret nobody claims yet is not read.
	oldPath := func(id string) string {
		return "GET /api/v1/namespaces/" + oldNS + "/secrets/" + connection.SecretName(id)
	}
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		return len(gets.requests()) >= settledCount+1, nil
	}), "drift reads every claimed Secret once")
	want := []string{oldPath("moving")}
	for i := range settledCount {
		want = append(want, oldPath(fmt.Sprintf("c%03d", i)))
	}
	assert.ElementsMatch(t, want, gets.requests())

	// sc-job re-rendered the connection into another namespace: its
	// record now claims the Secret there.
	cm, err := admin.CoreV1().ConfigMaps(agentNS).Get(ctx, connection.ConfigMapName("moving"), metav1.GetOptions{})
	require.NoError(t, err)
	moved := settle("moving", newNS)
	require.NoError(t, connrecord.Encode(cm, moved))
	cm, err = admin.CoreV1().ConfigMaps(agentNS).Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	indexer := records.Core().V1().ConfigMaps().Informer().GetIndexer()
	claimedBy := func(ns string) []string {
		objs, err := indexer.ByIndex(drift.ClaimsIndex, drift.KindSecret+" "+ns+"/"+connection.SecretName("moving"))
		require.NoError(t, err)
		var out []string
		for _, o := range objs {
			out = append(out, o.(*corev1.ConfigMap).Name+"@"+o.(*corev1.ConfigMap).ResourceVersion)
		}
		return out
	}
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return len(claimedBy(newNS)) == 1, nil
	}), "the index follows the record's new claim")
	assert.Equal(t, []string{cm.Name + "@" + cm.ResourceVersion}, claimedBy(newNS))
	assert.Empty(t, claimedBy(oldNS), "the update removed the old claim")

	// Both Secrets deleted, the one no longer claimed first: one watch (all
	// namespaces), one FIFO queue, one worker, so its event is handled
	// before the other's.
	before := len(gets.requests())
	require.NoError(t, admin.CoreV1().Secrets(oldNS).Delete(ctx, connection.SecretName("moving"), metav1.DeleteOptions{}))
	require.NoError(t, admin.CoreV1().Secrets(newNS).Delete(ctx, connection.SecretName("moving"), metav1.DeleteOptions{}))
	var got connection.Connection
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err = store.New(admin, agentNS).Get(ctx, connection.ObjectID("moving"))
		return err == nil && got.Status.Phase == connection.PhasePending, err
	}), "deleting the newly claimed Secret marks the connection Pending")
	msg := "Secret " + newNS + "/" + connection.SecretName("moving") + " was deleted; rendering it again"
	assert.Equal(t, drift.ReasonDrift, got.Status.Reason)
	assert.Equal(t, msg, got.Status.Message)
	select {
	case e := <-recorder.Events:
		assert.Equal(t, "Warning Drift "+msg, e, "the first and only drift is the new Secret's")
	case <-time.After(30 * time.Second):
		t.Fatal("no Drift Event was recorded")
	}
	assert.Equal(t, []string{"GET /api/v1/namespaces/" + newNS + "/secrets/" + connection.SecretName("moving")}, gets.requests()[before:],
		"the Secret no longer claimed is not read")

	assert.Equal(t, 1, strings.Count(logs.String(), "skipping undecodable record"),
		"the corrupt record is logged once, not once per event (%d Secrets were handled)", settledCount+2)
	assert.Contains(t, logs.String(), `"objectId":"bad"`)
}
