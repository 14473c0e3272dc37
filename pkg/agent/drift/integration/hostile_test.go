//go:build integration

// Package drift_integration runs drift against a real API server: what its
// metadata watches really receive and cache when a tenant floods the
// cluster with large Secrets carrying the user-settable managed-by label.
package drift_integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"

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

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

const (
	hostileCount = 200
	hostileSize  = 512 << 10
)

// requestLog records the requests a client sends, as "METHOD path" (and
// their query and Accept header).
type requestLog struct {
	mu      sync.Mutex
	seen    []string
	details []string
}

func (l *requestLog) wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			l.mu.Lock()
			l.seen = append(l.seen, r.Method+" "+r.URL.Path)
			l.details = append(l.details, r.URL.RawQuery+" | "+r.Header.Get("Accept"))
			l.mu.Unlock()
			return rt.RoundTrip(r)
		})
	})
	return cfg
}

func (l *requestLog) requests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seen...)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A tenant creates hostileCount labelled Secrets of hostileSize each while
// drift runs. Drift's cache holds them as bare PartialObjectMetadata, drift
// never reads one, and an edit of the Secret a record claims is still read
// and caught.
func TestHostileLabelledSecretsAreNeitherCachedNorRead(t *testing.T) {
	k := kubetest.New(t, kubetest.QPS(100, 200))
	admin := k.Clientset
	agentNS := kubetest.Namespace(t, kubetest.Prefix("sc-system-"))
	targetNS := kubetest.Namespace(t, kubetest.Prefix("team-"))
	tenantNS := kubetest.Namespace(t, kubetest.Prefix("tenant-"))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	// A settled connection and the Secret sc-job rendered for it.
	conn := connection.Connection{Spec: connection.Spec{Name: "blob1", Scope: targetNS}, Generation: 1,
		Status: connection.Status{Phase: connection.PhaseSucceeded, ObservedGeneration: 1, Resources: []connection.ResourceRef{
			{Kind: drift.KindSecret, Namespace: targetNS, Name: connection.SecretName("blob1")}}}}
	cm, err := connrecord.New(agentNS, conn)
	require.NoError(t, err)
	_, err = admin.CoreV1().ConfigMaps(agentNS).Create(ctx, cm, metav1.CreateOptions{})
	require.NoError(t, err)
	data := map[string][]byte{"AZURE_STORAGEBLOB_RESOURCEENDPOINT": []byte("https://acct.blob.core.windows.net/")}
	_, err = admin.CoreV1().Secrets(targetNS).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: connection.SecretName("blob1"),
			Labels:      map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: "blob1"},
			Annotations: map[string]string{render.AnnotationDataHash: render.DataHash(data)}},
		Data: data,
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	// Drift as the agent wires it, its API traffic logged per client.
	var gets, watches requestLog
	typed, err := kubernetes.NewForConfig(gets.wrap(k.Config))
	require.NoError(t, err)
	meta, err := metadata.NewForConfig(watches.wrap(k.Config))
	require.NoError(t, err)
	records := launcher.NewRecordsFactory(admin, agentNS, 0)
	policy := namespaces.Policy{Release: agentNS}
	inf := drift.NewInformers(meta, policy, 0)
	c, err := drift.New(drift.Deps{
		Namespace: agentNS, Records: records.Core().V1().ConfigMaps(), Informers: inf, Client: typed,
		Policy: policy, DriftOf: inspect.DriftOf, NotOurs: inspect.NotOurs, Store: store.New(admin, agentNS),
		Recorder: record.NewFakeRecorder(100), Metrics: health.NewMetrics(), Log: zerolog.New(zerolog.NewTestWriter(t)),
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
	for _, ok := range inf.WaitForCacheSync(ctx.Done()) {
		require.True(t, ok)
	}

	// The tenant's flood, while drift watches. Half the names follow the
	// pattern sc-job renders under, so they reach the record lookup.
	created := time.Now()
	hostile := map[string]bool{}
	names := make(chan string, hostileCount)
	for i := range hostileCount {
		name := fmt.Sprintf("junk-%03d", i)
		if i%2 == 0 {
			name = fmt.Sprintf("sc-h%03d-secret", i)
		}
		hostile[name] = true
		names <- name
	}
	close(names)
	payload := []byte(strings.Repeat("x", hostileSize))
	var wg sync.WaitGroup
	errs := make(chan error, hostileCount)
	for range 8 {
		wg.Go(func() {
			for name := range names {
				_, err := admin.CoreV1().Secrets(tenantNS).Create(ctx, &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{connection.LabelManagedBy: connection.ManagedByValue}},
					Data:       map[string][]byte{"blob": payload},
				}, metav1.CreateOptions{})
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("created %d Secrets of %d KiB in %s", hostileCount, hostileSize>>10, time.Since(created).Round(time.Millisecond))

	// A real drift after the flood: one watch stream (all namespaces), one
	// handler, one FIFO queue, so every hostile event is handled before it.
	require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := admin.CoreV1().Secrets(targetNS).Get(ctx, connection.SecretName("blob1"), metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Data["AZURE_STORAGEBLOB_RESOURCEENDPOINT"] = []byte("https://evil.example/")
		_, err = admin.CoreV1().Secrets(targetNS).Update(ctx, s, metav1.UpdateOptions{})
		return err
	}))
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := store.New(admin, agentNS).Get(ctx, connection.ObjectID("blob1"))
		return err == nil && got.Status.Phase == connection.PhasePending && got.Status.Reason == drift.ReasonDrift, err
	}), "the edit of the claimed Secret marks its connection Pending")

	ours := "/api/v1/namespaces/" + targetNS + "/secrets/" + connection.SecretName("blob1")
	for _, r := range gets.requests() {
		assert.Equal(t, "GET "+ours, r, "drift's only reads are of the Secret a record claims")
	}
	assert.NotEmpty(t, gets.requests())

	// The cache: every hostile Secret is in it (the label selects it), as
	// identity only.
	var cachedHostile, bytes int
	for _, o := range inf.Cached() {
		m, ok := o.(*metav1.PartialObjectMetadata)
		require.True(t, ok, "drift caches %T", o)
		assert.Empty(t, m.Labels)
		assert.Empty(t, m.Annotations)
		assert.Empty(t, m.ManagedFields)
		if m.Namespace == tenantNS && hostile[m.Name] {
			cachedHostile++
		}
		b, err := json.Marshal(m)
		require.NoError(t, err)
		bytes += len(b)
	}
	assert.Equal(t, hostileCount, cachedHostile)
	t.Logf("drift caches %d objects in %d bytes of JSON (the tenant's Secrets hold %d MiB of data)",
		len(inf.Cached()), bytes, hostileCount*hostileSize>>20)
	assert.Less(t, bytes, len(inf.Cached())*512, "a few hundred bytes per object, whatever its size on the server")

	// The watches asked the server for metadata only, selected by label.
	watches.mu.Lock()
	defer watches.mu.Unlock()
	require.NotEmpty(t, watches.seen)
	for i, r := range watches.seen {
		assert.True(t, r == "GET /api/v1/secrets" || r == "GET /api/v1/serviceaccounts", "drift's watch client lists and watches only: %s", r)
		assert.Contains(t, watches.details[i], "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dsc-extension", r)
		assert.Contains(t, watches.details[i], "as=PartialObjectMetadata", r)
	}
}
