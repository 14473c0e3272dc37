//go:build integration

// Package writes_integration counts the API writes the product makes per
// connection, from the API server's own apiserver_request_total. It is a
// package of its own so that its API server serves nothing else: the
// metric has no namespace, and another test's namespace being cleaned up
// (the namespace controller's deletes) would be counted too.
package writes_integration

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/e2e/testbed/apiwrites"
	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/job/jobrun"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

type env struct {
	t      *testing.T
	ctx    context.Context
	client kubernetes.Interface
	k      *kubetest.Clients
	sys    string // records' namespace
	target string // where connections render
	store  *store.Store
	logs   bytes.Buffer
	creds  []string
}

func setup(t *testing.T) *env {
	t.Helper()
	if os.Getenv("E2E_KUBECONFIG") != "" {
		t.Skip("counts the API server's requests: needs the package's private API server, not a shared cluster")
	}
	k := kubetest.New(t, kubetest.QPS(200, 400))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, client: k.Clientset, k: k}
	e.sys = kubetest.Namespace(t, kubetest.Prefix("sc-system-"))
	e.target = kubetest.Namespace(t, kubetest.Prefix("team-"))
	e.store = store.New(e.client, e.sys)
	t.Cleanup(func() {
		for _, v := range e.creds {
			if strings.Contains(e.logs.String(), v) {
				t.Errorf("credential value %q in the run's log", v)
			}
		}
	})
	return e
}

func (e *env) runner(mod ...func(*jobrun.Config)) *jobrun.Runner {
	cfg := jobrun.Config{
		Client: e.client, Dynamic: e.k.Dynamic, Store: e.store, Namespace: e.sys, JobName: "sc-job",
		Instance: "sc-job-test", Log: zerolog.New(&e.logs), Workers: 1,
	}
	for _, m := range mod {
		m(&cfg)
	}
	r, err := jobrun.New(cfg)
	require.NoError(e.t, err)
	return r
}

// secretChange is a redis connection with one credential: the costliest
// kind to create (a credential Secret besides the record).
func (e *env) secretChange(name string) connection.Change {
	v := fmt.Sprintf("cred-VALUE-%d", rand.Uint64())
	e.creds = append(e.creds, v)
	return connection.Change{
		RequestID: fmt.Sprintf("req-%s-%d", name, rand.Uint32()),
		Spec: connection.Spec{
			Name: name, Scope: e.target,
			TargetService:  connection.TargetService{Type: catalog.TargetRedis, ID: "/subscriptions/s/redis"},
			AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
			Configurations: []connection.Configuration{{Name: "AZURE_REDIS_CONNECTIONSTRING", Credential: true}},
		},
		Credentials: connection.Credentials{"AZURE_REDIS_CONNECTIONSTRING": v},
	}
}

func (e *env) apply(ch connection.Change) {
	e.t.Helper()
	_, applied, err := e.store.Apply(e.ctx, ch)
	require.NoError(e.t, err)
	require.True(e.t, applied)
}

// ownJob stands in for the Job the launcher creates; suspended, so no pod
// is ever created for it.
func (e *env) ownJob() {
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.sys, Name: "sc-job"},
		Spec: batchv1.JobSpec{
			Suspend: ptr.To(true),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "sc-job", Image: "localhost/sc-extension/job:dev"}},
			}},
		},
	}
	_, err := e.client.BatchV1().Jobs(e.sys).Create(e.ctx, job, metav1.CreateOptions{})
	require.NoError(e.t, err)
}

func (e *env) jobExists() bool {
	j, err := e.client.BatchV1().Jobs(e.sys).Get(e.ctx, "sc-job", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	require.NoError(e.t, err)
	return j.DeletionTimestamp == nil
}

// productResources are the group/resource pairs the store and sc-job
// write. Everything else the API server counts in the window belongs to
// the control plane itself (leases, endpoints, the job controller's
// core/v1 Events and Job status), never to the product: sc-job writes
// events.k8s.io/v1 Events only.
var productResources = map[string]bool{
	"/configmaps": true, "/secrets": true, "/serviceaccounts": true,
	"events.k8s.io/events": true, "batch/jobs": true,
	"secrets-store.csi.x-k8s.io/secretproviderclasses": true,
}

// writeCounts sums a scrape difference per "VERB group/resource" over the
// write verbs, every response code included (a refused write still cost a
// request); subresources (jobs/status, written by the job controller) are
// left out.
func writeCounts(d apiwrites.Requests) (product, other map[string]int) {
	product, other = map[string]int{}, map[string]int{}
	for k, v := range d {
		write := false
		for _, verb := range apiwrites.WriteVerbs {
			write = write || k.Verb == verb
		}
		if !write {
			continue
		}
		gr := k.Group + "/" + k.Resource
		key := k.Verb + " " + gr
		if k.Subresource != "" {
			key += "/" + k.Subresource
		}
		if productResources[gr] && k.Subresource == "" {
			product[key] += int(v)
		} else {
			other[key] += int(v)
		}
	}
	return product, other
}

func describeCounts(m map[string]int, n int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-32s %4d  (%.2f per connection)", k, m[k], float64(m[k])/float64(n))
	}
	return b.String()
}

// quiet waits for kube-controller-manager's own writes to the test's
// namespaces (the root CA ConfigMap, the default ServiceAccount), so the
// scrapes around the measured work count none of them.
func (e *env) quiet() {
	e.t.Helper()
	for _, ns := range []string{e.sys, e.target} {
		err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			if _, err := e.client.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{}); apierrors.IsNotFound(err) {
				return false, nil
			} else if err != nil {
				return false, err
			}
			if _, err := e.client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); apierrors.IsNotFound(err) {
				return false, nil
			} else if err != nil {
				return false, err
			}
			return true, nil
		})
		require.NoError(e.t, err, "namespace %s: kube-controller-manager's objects", ns)
	}
}

func (e *env) scrape() apiwrites.Requests {
	e.t.Helper()
	r, err := apiwrites.Scrape(e.ctx, e.client)
	require.NoError(e.t, err)
	return r
}

func (e *env) since(before apiwrites.Requests) (product, other map[string]int) {
	e.t.Helper()
	d, err := e.scrape().Sub(before)
	require.NoError(e.t, err)
	return writeCounts(d)
}

// TestAPIWritesPerCreatedConnection counts, from the API server's
// apiserver_request_total, every write the product makes to create N
// connections (the store's writes for each request, then one sc-job run
// that renders them all and deletes its Job) and to re-render them
// unchanged (--render-all over settled connections). Counts, not timings.
//
// Budget: at most 4 writes per created connection, Events included; the
// run's own writes (the Job's create and delete, and its one summary
// Event) are per run, not per connection: they are reported, amortised
// over N, and bounded per run. An unchanged re-render writes nothing.
func TestAPIWritesPerCreatedConnection(t *testing.T) {
	e := setup(t)
	e.quiet()
	const n = 20

	before := e.scrape()
	e.ownJob() // the launcher's create
	for i := range n {
		e.apply(e.secretChange(fmt.Sprintf("conn%d", i)))
	}
	sum, err := e.runner().Run(e.ctx)
	require.NoError(t, err)
	require.Equal(t, n, sum.Rendered)
	require.False(t, e.jobExists(), "the run deleted its Job")
	product, other := e.since(before)

	total := 0
	for _, v := range product {
		total += v
	}
	jobs := product["POST batch/jobs"] + product["DELETE batch/jobs"]
	events := product["POST events.k8s.io/events"]
	runEvents := min(events, 1) // one summary Event per run
	perConn := float64(total-jobs-runEvents) / n
	t.Logf("API writes for %d created connections (secret auth, one credential each), one sc-job run:%s\n"+
		"  per connection, counted: %.2f (Events included); per run, amortised over %d: Job %d + summary Event %d = %.2f per connection\n"+
		"  not the product's (control plane):%s",
		n, describeCounts(product, n), perConn, n, jobs, runEvents, float64(jobs+runEvents)/n, describeCounts(other, n))
	assert.LessOrEqual(t, perConn, 4.0, "writes per created connection")
	assert.LessOrEqual(t, events, 1, "Events: one per run, none per successful connection")
	assert.LessOrEqual(t, jobs, 2, "the Job: created once, deleted once")
	assert.Equal(t, map[string]int{
		"POST /secrets":             2 * n, // the credential Secret (store), the rendered Secret (sc-job)
		"POST /configmaps":          n,     // the record with its first status (store)
		"PUT /configmaps":           n,     // Succeeded (sc-job): the one status write of the run
		"POST events.k8s.io/events": 1,     // the run's summary
		"POST batch/jobs":           1,
		"DELETE batch/jobs":         1,
	}, product, "exactly these writes, on this quiet API server")

	// An unchanged re-render: every record settled, every object intact.
	for _, c := range e.list() {
		require.Equal(t, connection.PhaseSucceeded, c.Status.Phase, c.Spec.Name)
	}
	before = e.scrape()
	sum, err = e.runner(func(c *jobrun.Config) { c.RenderAll = true }).Run(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, n, sum.Rendered, "every connection re-rendered")
	product, other = e.since(before)
	t.Logf("API writes re-rendering %d unchanged connections (--render-all):%s\n  not the product's:%s",
		n, describeCounts(product, n), describeCounts(other, n))
	assert.Empty(t, product, "an unchanged re-render writes nothing")
}

func (e *env) list() []connection.Connection {
	e.t.Helper()
	l, err := e.store.List(e.ctx)
	require.NoError(e.t, err)
	return l
}
