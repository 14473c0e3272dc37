//go:build integration

package query_integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/agent/query"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

const cluster = "c1"

// reader is the agent's query Reader over the store, without validate.
type reader struct{ *store.Store }

func (reader) Validate(context.Context, connection.Connection) (protocol.ValidateResult, error) {
	return protocol.ValidateResult{}, errors.New("not in this test")
}

func change(name, reqID, scope string) connection.Change {
	return connection.Change{RequestID: reqID, Spec: connection.Spec{Name: name, Scope: scope,
		TargetService: connection.TargetService{Type: catalog.TargetStorageBlob, ID: "/subscriptions/x"},
		AuthInfo:      connection.AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: "00000000-0000-0000-0000-000000000000"}}}
}

// On a real API server the cache lists the record ConfigMaps by their
// selector (an unlabelled ConfigMap beside them is never seen), reports a
// corrupt one in its page, follows the store's writes, and drops a record
// as soon as it is terminating (held by its finalizer): show then reads
// through the API and finds it gone.
func TestCacheFollowsTheStoreOnARealAPIServer(t *testing.T) {
	cs := kubetest.New(t, kubetest.QPS(100, 200)).Clientset
	ns := kubetest.Namespace(t, kubetest.Prefix("sc-system-"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := store.New(cs, ns)
	t.Cleanup(func() { releaseAll(t, ns) })

	for i := range 30 {
		_, _, err := s.Apply(ctx, change(fmt.Sprintf("conn%02d", i), fmt.Sprintf("r%d", i), "team-a"))
		require.NoError(t, err)
	}
	cms := cs.CoreV1().ConfigMaps(ns)
	_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "unrelated"}, Data: map[string]string{"spec": "{"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	broken := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: connection.ConfigMapName("broken")},
		Data: map[string]string{record.KeySpec: "{not json"}}
	record.SetOwnership(&broken.ObjectMeta, connection.Spec{Name: "broken"})
	_, err = cms.Create(ctx, broken, metav1.CreateOptions{})
	require.NoError(t, err)

	c, err := query.NewCache(launcher.NewRecordsFactory(cs, ns, 0), zerolog.Nop())
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-done) })

	srv := devservertest.Start(t, devserver.Options{Clusters: []string{cluster}})
	nc, _ := devservertest.Agent(t, srv, cluster, zerolog.Nop())
	serveCtx, stopServe := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- query.Serve(serveCtx, nc, query.Options{Cluster: cluster, Cache: c, Reader: reader{s}, PublicKey: "XPUB",
			IsNotFound: store.IsNotFound, Deadline: 30 * time.Second})
	}()
	t.Cleanup(func() { stopServe(); require.NoError(t, <-served) })
	cp := devservertest.ControlPlane(t, srv, cluster, 40*time.Second)
	// Serve subscribes in its goroutine: a query sent before that finds no
	// responder. The public key is answered without the cache, so waiting
	// for it leaves the list below the first query of the cache.
	require.Eventually(t, func() bool { _, err := cp.PublicKey(ctx); return err == nil }, 10*time.Second, 10*time.Millisecond,
		"the query service subscribed")

	l, err := controlplane.List(ctx, cp, controlplane.ListOptions{Limit: 7})
	require.NoError(t, err, "the first query waits for the cache's first sync")
	assert.Len(t, l.Items, 30)
	require.Len(t, l.Errors, 1)
	assert.Equal(t, "broken", l.Errors[0].ObjectID)
	assert.Equal(t, protocol.RecordCorrupt, l.Errors[0].Reason)
	assert.Equal(t, 5, l.Pages)

	// The store moves conn00 to team-b: the cache follows.
	_, _, err = s.Apply(ctx, change("conn00", "r100", "team-b"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		l, err := controlplane.List(ctx, cp, controlplane.ListOptions{Namespace: "team-b"})
		return err == nil && len(l.Items) == 1 && l.Items[0].Spec.Name == "conn00"
	}, 30*time.Second, 20*time.Millisecond)

	// Deleted and removed: terminating, held by the finalizer, not listed;
	// show reads through the store, which reads it as gone.
	del := change("conn01", "r101", "team-a")
	del.Delete = true
	_, _, err = s.Apply(ctx, del)
	require.NoError(t, err)
	require.NoError(t, s.Remove(ctx, "conn01"))
	held, err := cms.Get(ctx, connection.ConfigMapName("conn01"), metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, held.DeletionTimestamp)
	require.Eventually(t, func() bool {
		snap, err := c.Snapshot(ctx)
		return err == nil && snap.Len() == 30
	}, 30*time.Second, 20*time.Millisecond)
	var v protocol.ConnectionView
	err = cp.Query(ctx, protocol.Query{Verb: protocol.VerbShow, Connection: "conn01"}, &v)
	var re *protocol.ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, protocol.CodeNotFound, re.Code)
	require.NoError(t, cp.Query(ctx, protocol.Query{Verb: protocol.VerbShow, Connection: "conn02"}, &v))
	assert.Equal(t, connection.PhasePending, v.Status.Phase)
}

// releaseAll drops the records' finalizers so that the namespace can go.
func releaseAll(t *testing.T, ns string) {
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
}
