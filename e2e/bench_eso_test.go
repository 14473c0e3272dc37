//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/sc-extension/sc-extension/e2e/testbed/eso"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// esoConfig is one way of running ESO in the comparison.
type esoConfig struct {
	label string // how the report names it
	short string // how the chart does
	args  []string
}

// esoConfigs are issue 9's two: ESO's defaults (--concurrent=1, client QPS
// 50, burst 100) and the flags its users tune for large clusters.
var esoConfigs = []esoConfig{
	{label: "ESO v0.16.2, default flags (--concurrent=1, QPS 50/burst 100)", short: "ESO v0.16.2, default flags"},
	{label: "ESO v0.16.2, tuned (--concurrent=50 --client-qps=100 --client-burst=200)", short: "ESO v0.16.2, tuned (50 workers, QPS 100)", args: []string{"--concurrent=50", "--client-qps=100", "--client-burst=200"}},
}

// esoResult is one measured ESO run.
type esoResult struct {
	esoConfig
	wall     time.Duration // ESO's first start -> all Secrets present
	mem      procMem       // of the process that finished; Peak is VmHWM over its life
	restarts int           // how often it died and was started again
}

// benchESOStore is the fake ClusterSecretStore every ExternalSecret reads.
const benchESOStore = "sc-bench-fake"

// esoSecrets is what ESO is asked to render: the Secrets benchBulk's
// connections render (same names, keys and values), by namespace slot.
// Every fourth uses workload identity, as in benchBulk.
type esoSecrets struct {
	store map[string]string // remote key -> JSON object of the Secret's data
	items []esoItem
}

type esoItem struct {
	slot   int               // namespace index
	name   string            // connection name: the ExternalSecret's
	secret string            // the rendered Secret's name
	remote string            // the store key holding its data
	want   map[string][]byte // the Secret's data
}

// esoWorkload renders n connections like benchBulk's and turns each into
// an ExternalSecret extracting its data from a fake store. Credential
// values are a fixed stand-in of a credential's length, so connections of
// one auth kind render the same data and the store holds one entry per
// kind (eso.FakeClusterSecretStore says why it must stay small).
func esoWorkload(t *testing.T, n, nsCount int) esoSecrets {
	w := esoSecrets{store: map[string]string{}}
	for i := range n {
		auth := catalog.AuthSecret
		if i%4 == 0 {
			auth = catalog.AuthWorkloadIdentity
		}
		name := uniq(fmt.Sprintf("bulk%d", i))
		spec, _, err := specFor(name, "eso-bench", catalog.TargetStorageBlob, auth, blobID)
		require.NoError(t, err)
		creds := connection.Credentials{}
		for _, c := range spec.Configurations {
			if c.Credential {
				creds[c.Name] = "bench-credential-0123456789" // as long as newCredential's
			}
		}
		objs, err := render.Render(connection.Connection{Spec: spec}, creds)
		require.NoError(t, err)
		data := map[string]string{}
		for k, v := range objs.Secret.Data {
			data[k] = string(v)
		}
		b, err := json.Marshal(data)
		require.NoError(t, err)
		remote := string(auth)
		if prev, ok := w.store[remote]; ok {
			require.Equal(t, prev, string(b), "connections of one auth kind render the same data")
		}
		w.store[remote] = string(b)
		w.items = append(w.items, esoItem{slot: i % nsCount, name: name, secret: objs.Secret.Name, remote: remote, want: objs.Secret.Data})
	}
	return w
}

// benchESO measures ESO on the same cluster: for each config, the
// workload's ExternalSecrets in nsCount fresh namespaces are created while ESO is
// not running, then ESO is started and timed until all their Secrets exist.
// ESO's CRDs, store and objects are removed before it returns.
func (e *env) benchESO(t *testing.T, w esoSecrets, nsCount int, logDir string) []esoResult {
	ctx := context.Background()
	bctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	rel, err := eso.Build(bctx, eso.Options{Logf: t.Logf})
	cancel()
	require.NoError(t, err)

	cfg := rest.CopyConfig(e.cluster.RESTConfig)
	cfg.QPS, cfg.Burst = 200, 400 // setup only: it is not timed
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	crds, err := eso.LoadCRDs(rel.CRDs)
	require.NoError(t, err)
	names, err := eso.InstallCRDs(ctx, dyn, crds)
	removed := false
	remove := func() {
		if removed {
			return
		}
		removed = true
		rctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
		defer cancel()
		if err := eso.RemoveCRDs(rctx, dyn, names); err != nil {
			t.Errorf("removing ESO's CRDs: %v", err)
		}
	}
	t.Cleanup(remove)
	require.NoError(t, err)

	_, err = dyn.Resource(eso.ClusterSecretStores).Create(ctx, eso.FakeClusterSecretStore(benchESOStore, w.store), metav1.CreateOptions{})
	require.NoError(t, err)

	var out []esoResult
	for i, c := range esoConfigs {
		logPath := filepath.Join(logDir, fmt.Sprintf("eso-%d.log", i+1))
		out = append(out, e.benchESORun(t, dyn, rel.Binary, c, w, nsCount, logPath))
	}
	remove()
	return out
}

// esoMaxRestarts bounds how often a run restarts ESO after it died.
const esoMaxRestarts = 20

// benchESORun is one timed run of ESO with config c. When ESO dies (its
// fake provider's unlocked map, see eso.FakeClusterSecretStore) it is
// started again at once, as a Deployment would restart it (without the
// kubelet's back-off); the clock keeps running from the first start and
// the restarts are reported.
func (e *env) benchESORun(t *testing.T, dyn dynamic.Interface, binary string, c esoConfig, w esoSecrets, nsCount int, logPath string) esoResult {
	ctx := context.Background()
	nss := make([]string, nsCount)
	inRun := map[string]bool{}
	for i := range nss {
		nss[i] = e.cluster.TestNamespace(t)
		inRun[nss[i]] = true
	}
	createAll(t, len(w.items), func(i int) error {
		it := w.items[i]
		_, err := dyn.Resource(eso.ExternalSecrets).Namespace(nss[it.slot]).Create(ctx,
			eso.ExternalSecret(nss[it.slot], it.name, benchESOStore, it.secret, it.remote), metav1.CreateOptions{})
		return err
	})
	secrets := countObjects(t, listWatch(e.cluster.Clientset, "Secret", "", eso.LabelManaged+"=true"), &corev1.Secret{}, secretIn(inRun))
	require.Zero(t, secrets.count(), "no Secret before ESO runs")

	_ = os.Remove(logPath)
	res := esoResult{esoConfig: c}
	var first time.Time
	for {
		p, err := eso.Start(binary, e.cluster.Kubeconfig, logPath, c.args...)
		require.NoError(t, err)
		t.Cleanup(func() { p.Stop(30 * time.Second) })
		if first.IsZero() {
			first = p.Started
		}
		err = secrets.wait(atLeast(len(w.items)), 20*time.Minute, p.Exited())
		if err == nil {
			res.wall = time.Since(first)
			res.mem, err = readProcMem(p.Pid())
			require.NoError(t, err)
			p.Stop(30 * time.Second)
			break
		}
		require.ErrorIs(t, err, errAborted, "%s: all Secrets; log %s:\n%s", c.label, logPath, logTail(logPath))
		res.restarts++
		t.Logf("%s: ESO died (%v) with %d of %d Secrets; restart %d", c.label, p.Err(), secrets.count(), len(w.items), res.restarts)
		require.LessOrEqual(t, res.restarts, esoMaxRestarts, "ESO keeps dying; log %s:\n%s", logPath, logTail(logPath))
	}

	// ESO rendered what it was asked: spot-check one of each auth kind.
	for _, it := range w.items[:2] {
		s, err := e.cluster.Clientset.CoreV1().Secrets(nss[it.slot]).Get(ctx, it.secret, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, it.want, s.Data, "ESO's Secret %s/%s", s.Namespace, s.Name)
	}

	// The next run must find only its own ExternalSecrets, and no garbage
	// collection of this run's Secrets running under it.
	for _, ns := range nss {
		require.NoError(t, dyn.Resource(eso.ExternalSecrets).Namespace(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}))
	}
	secrets.await(t, none, 5*time.Minute, c.label+": owned Secrets collected")
	secrets.Stop()
	return res
}

// createAll runs create(0..n-1) on a few workers; the first error fails
// the test.
func createAll(t *testing.T, n int, create func(i int) error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := create(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// benchPlainSecrets is ESO's floor: a plain sequential client-go loop
// writing the workload's Secrets (the same names, keys and values) into
// nsCount fresh namespaces.
func (e *env) benchPlainSecrets(t *testing.T, w esoSecrets, nsCount int) time.Duration {
	ctx := context.Background()
	cs := e.cluster.Clientset
	nss := make([]string, nsCount)
	for i := range nss {
		nss[i] = e.cluster.TestNamespace(t)
	}
	start := time.Now()
	for _, it := range w.items {
		_, err := cs.CoreV1().Secrets(nss[it.slot]).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: it.secret}, Data: it.want}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	return time.Since(start)
}
