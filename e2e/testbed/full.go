package testbed

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Labels and annotations put on test namespaces.
const (
	LabelTest      = "sc-extension.io/e2e-test"      // sanitised test name: select a test's namespaces
	LabelManagedBy = "sc-extension.io/managed-by"    // always "testbed": select all test namespaces
	AnnotationTest = "sc-extension.io/e2e-test-name" // the exact test name
)

// Cluster is a full cluster (real nodes, pods run) shared by the tests of a
// test binary.
type Cluster struct {
	Kubeconfig string
	RESTConfig *rest.Config
	Clientset  kubernetes.Interface

	provider fullProvider
	mu       sync.Mutex
	tests    map[testing.TB]*testState
}

// testState is what the cluster remembers per test, for OnFailure.
type testState struct {
	namespaces []string
	onFailure  bool
	dumped     bool
}

// fullProvider is a source of full clusters: a kubeconfig given by the
// environment, the local test bed of `make cluster`, or kind when a Docker
// engine is available.
type fullProvider interface {
	// name is for messages.
	name() string
	// connect makes sure the cluster exists and returns its kubeconfig.
	connect(ctx context.Context) (string, error)
	// dumpComponentLogs writes the control-plane and node logs to dir.
	dumpComponentLogs(ctx context.Context, dir string) error
}

var fullEnv struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Full returns a handle on a full cluster with real pods: E2E_KUBECONFIG if
// set, else the local full cluster started by `make cluster` (state dir),
// else a kind cluster if a Docker engine answers. It calls t.Fatal (saying
// "run make cluster") if there is none. The handle is shared by all tests of
// the binary.
func Full(t testing.TB) *Cluster {
	t.Helper()
	fullEnv.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		fullEnv.c, fullEnv.err = connectFull(ctx)
	})
	if fullEnv.err != nil {
		t.Fatalf("testbed: %v", fullEnv.err)
	}
	return fullEnv.c
}

func chooseProvider(ctx context.Context) (fullProvider, error) {
	if kc := os.Getenv("E2E_KUBECONFIG"); kc != "" {
		return externalProvider{kubeconfig: kc}, nil
	}
	dir := DefaultStateDir()
	r := Status(ctx, dir)
	switch {
	case r.Healthy && r.Mode == ModeFull:
		return localProvider{dir: dir}, nil
	case r.Healthy:
		return nil, fmt.Errorf("the cluster in %s is an api-mode cluster without nodes: run make cluster-down && make cluster", dir)
	}
	if dockerAvailable(ctx) {
		return &kindProvider{}, nil
	}
	return nil, fmt.Errorf("no full cluster (%s): run make cluster", r.Detail)
}

func connectFull(ctx context.Context) (*Cluster, error) {
	p, err := chooseProvider(ctx)
	if err != nil {
		return nil, err
	}
	kc, err := p.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.name(), err)
	}
	cfg, err := restConfigFromKubeconfig(kc)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(rctx).Error(); err != nil {
		return nil, fmt.Errorf("%s cluster %s not ready: %w (run make cluster-status)", p.name(), kc, err)
	}
	return &Cluster{Kubeconfig: kc, RESTConfig: cfg, Clientset: cs, provider: p, tests: map[testing.TB]*testState{}}, nil
}

func (c *Cluster) state(t testing.TB) *testState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.tests[t]
	if !ok {
		s = &testState{}
		c.tests[t] = s
	}
	return s
}

// TestNamespace creates a uniquely named namespace (labelled with the test
// name) and deletes it at t.Cleanup. It returns once the namespace's
// default ServiceAccount exists, because pods cannot be created before.
func (c *Cluster) TestNamespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        namespaceName(t.Name()),
		Labels:      map[string]string{LabelTest: labelValue(t.Name()), LabelManagedBy: "testbed"},
		Annotations: map[string]string{AnnotationTest: t.Name()},
	}}
	created, err := c.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("testbed: create namespace: %v", err)
	}
	name := created.Name
	st := c.state(t)
	c.mu.Lock()
	st.namespaces = append(st.namespaces, name)
	c.mu.Unlock()
	t.Cleanup(func() {
		// Dump before deleting when OnFailure was registered earlier
		// (cleanups run last-registered first).
		c.dumpIfFailed(t)
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Clientset.CoreV1().Namespaces().Delete(dctx, name, metav1.DeleteOptions{}); ignoreNotFound(err) != nil {
			t.Errorf("testbed: delete namespace %s: %v", name, err)
		}
	})
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 45*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := c.Clientset.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("testbed: namespace %s: default ServiceAccount never appeared (is kube-controller-manager running?): %v", name, err)
	}
	return name
}

// OnFailure registers a cleanup that, if t failed, dumps every component log
// and a `kubectl describe`-like state of sc-system and t's test namespaces
// into $ARTIFACTS/<TestName>/ (default _output/e2e-logs/<TestName>/).
func (c *Cluster) OnFailure(t testing.TB) {
	st := c.state(t)
	c.mu.Lock()
	st.onFailure = true
	c.mu.Unlock()
	t.Cleanup(func() { c.dumpIfFailed(t) })
}

func (c *Cluster) dumpIfFailed(t testing.TB) {
	st := c.state(t)
	c.mu.Lock()
	if !t.Failed() || !st.onFailure || st.dumped {
		c.mu.Unlock()
		return
	}
	st.dumped = true
	nss := append([]string{"sc-system"}, st.namespaces...)
	c.mu.Unlock()

	dir := filepath.Join(artifactsDir(), pathSafe(t.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := []error{c.DumpLogs(filepath.Join(dir, "components"))}
	errs = append(errs, dumpClusterState(ctx, c.Clientset, nss, dir))
	if err := errors.Join(errs...); err != nil {
		t.Logf("testbed: dump incomplete: %v", err)
	}
	t.Logf("testbed: test failed: cluster state and logs dumped to %s", dir)
}

// DumpLogs writes every component's log (apiserver, controller-manager,
// scheduler, etcd, kubelet, kube-proxy, containerd) to dir.
func (c *Cluster) DumpLogs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return c.provider.dumpComponentLogs(ctx, dir)
}

// externalProvider is a cluster given by E2E_KUBECONFIG; its component logs
// are not reachable from here.
type externalProvider struct{ kubeconfig string }

func (e externalProvider) name() string                            { return "E2E_KUBECONFIG" }
func (e externalProvider) connect(context.Context) (string, error) { return e.kubeconfig, nil }
func (e externalProvider) dumpComponentLogs(_ context.Context, dir string) error {
	return os.WriteFile(filepath.Join(dir, "README.txt"),
		[]byte("The cluster came from E2E_KUBECONFIG="+e.kubeconfig+"; its component logs are not accessible to the test bed.\n"), 0o644)
}

// localProvider is the cluster of `make cluster`.
type localProvider struct{ dir string }

func (p localProvider) name() string { return "local cluster " + p.dir }
func (p localProvider) connect(context.Context) (string, error) {
	return Layout{Dir: p.dir}.AdminKubeconfig(), nil
}
func (p localProvider) dumpComponentLogs(_ context.Context, dir string) error {
	return copyLogs(Layout{Dir: p.dir}.LogsDir(), dir)
}

// artifactsDir is $ARTIFACTS (CI systems collect it) or _output/e2e-logs.
func artifactsDir() string {
	if d := os.Getenv("ARTIFACTS"); d != "" {
		return d
	}
	if root, err := repoRoot(); err == nil {
		return filepath.Join(root, "_output", "e2e-logs")
	}
	return filepath.Join(os.TempDir(), "sc-e2e-logs")
}

// copyLogs copies the *.log files of src to dst, at most the last 20 MiB of
// each (a kubelet at --v=2 writes a lot; the end is what explains a failure).
func copyLogs(src, dst string) error {
	logs, err := filepath.Glob(filepath.Join(src, "*.log"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	var errs []error
	for _, f := range logs {
		b, err := readTail(f, 20<<20)
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

var nonDNS = regexp.MustCompile(`[^a-z0-9]+`)

// namespaceName derives "e2e-<test>-<random>" (at most 63 characters, DNS
// label) from a test name.
func namespaceName(test string) string {
	base := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(test), "-"), "-")
	if len(base) > 45 {
		base = strings.TrimRight(base[:45], "-")
	}
	return "e2e-" + base + "-" + randomSuffix(5)
}

var nonLabel = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// labelValue makes a valid label value (63 chars, alphanumeric at both ends).
func labelValue(s string) string {
	v := nonLabel.ReplaceAllString(s, "_")
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "_.-")
}

// pathSafe keeps a test name readable as a path ("TestA/sub case" ->
// "TestA/sub_case") without letting it escape the artifacts directory.
func pathSafe(s string) string {
	parts := strings.Split(s, "/")
	for i, p := range parts {
		p = nonLabel.ReplaceAllString(p, "_")
		if p == "" || p == "." || p == ".." {
			p = "_"
		}
		parts[i] = p
	}
	return filepath.Join(parts...)
}

func randomSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
