//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/e2e/testbed"
	"github.com/sc-extension/sc-extension/e2e/testbed/helmrelease"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

// The product suite installs the chart once with the real helm CLI into
// sc-system (Pod Security "restricted" enforced) against an in-process
// development control plane, then drives it the way scctl does.

const (
	systemNS  = "sc-system"
	release   = "sc-extension"
	clusterID = "e2e"
	// runAnnotation marks the suite's install (podAnnotations): a release
	// without it belongs to someone else (make demo) and is given back.
	runAnnotation = "e2e.sc-extension.io/run"
)

// env is what every product test shares: one install, one control plane.
type env struct {
	cluster *testbed.Cluster
	nats    *devserver.Server
	// podNATSURL is how pods reach the control plane: the node's own address.
	podNATSURL string
	chart      string
	cp         *controlplane.Client
	helm       string // the helm CLI
	// uninstalled is set once the uninstall test removed the release.
	uninstalled bool
}

var (
	envOnce sync.Once
	shared  *env
	envErr  error
	// giveBack is a release the suite found installed (make demo's) and
	// borrowed; the suite's end restores it.
	giveBack struct {
		release *helmrelease.Snapshot
		chart   string
	}
)

// TestMain runs the tests, then the suite's end in a fixed order (leak
// scan, uninstall checks, giving a borrowed release back), whatever the
// tests' names and whichever of them ran.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := endSuite(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL at the suite's end:\n%v\n", err)
		code = 1
	}
	os.Exit(code)
}

func endSuite() error {
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...) }
	var errs []error
	if shared != nil {
		errs = append(errs, shared.suiteEnd(ctx, logf))
	}
	// Given back even when the install failed half-way: it may have
	// replaced the NATS credentials and records already.
	if r := giveBack.release; r != nil {
		if err := r.Restore(ctx, giveBack.chart); err != nil {
			errs = append(errs, fmt.Errorf("giving back %s: %w (make demo reinstalls it)", r.Describe(), err))
		} else {
			logf("gave back %s; its agent is Ready", r.Describe())
		}
	}
	if shared != nil {
		shared.cp.Close()
		shared.nats.Shutdown()
		_ = os.RemoveAll(shared.nats.StoreDir())
	}
	return errors.Join(errs...)
}

// product returns the installed product, installing it on first use. The
// first caller's failure is every caller's failure: one broken install must
// not be retried by each test.
func product(t *testing.T) *env {
	t.Helper()
	c := testbed.Full(t)
	c.OnFailure(t)
	envOnce.Do(func() { shared, envErr = install(t, c) })
	if envErr != nil {
		t.Fatalf("installing the product failed: %v", envErr)
	}
	return shared
}

func install(t *testing.T, c *testbed.Cluster) (*env, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nodeIP, err := nodeAddress(ctx, c)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// The store outlives the first test (t.TempDir would not); TestMain removes it.
	storeDir, err := os.MkdirTemp("", "sc-e2e-nats-")
	if err != nil {
		return nil, err
	}
	srv, err := devserver.Start(ctx, devserver.Options{
		Host: "0.0.0.0", Port: port, StoreDir: storeDir,
		Clusters: []string{clusterID}, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	if err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	e := &env{cluster: c, nats: srv, podNATSURL: fmt.Sprintf("nats://%s:%d", nodeIP, port), chart: repoRoot(t) + "/chart",
		helm: helmBin(t)}
	// Before anything of sc-system is overwritten: a release someone else
	// installed is recorded, to be given back at the suite's end.
	borrowed, err := helmrelease.Take(ctx, helmrelease.Options{
		Helm: helmRunner(c.Kubeconfig, e.helm), Client: c.Clientset, Release: release, Namespace: systemNS,
		Marker: runAnnotation, RecordSelector: record.Selector,
	})
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("looking for a release to borrow: %w", err)
	}
	if borrowed != nil {
		giveBack.release, giveBack.chart = borrowed, e.chart
		t.Logf("borrowing %s: given back at the suite's end", borrowed.Describe())
	}
	if err := e.prepareSystemNamespace(ctx); err != nil {
		srv.Shutdown()
		return nil, err
	}
	if out, err := tryHelm(c.Kubeconfig, e.helm, e.helmArgs("upgrade", "--install")...); err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("helm install: %w\n%s", err, out)
	}
	admin := srv.Admin()
	e.cp, err = controlplane.Dial(ctx, controlplane.Options{URL: fmt.Sprintf("nats://127.0.0.1:%d", port),
		User: admin.User, Password: admin.Password, Cluster: clusterID, Timeout: 10 * time.Second})
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	return e, nil
}

// helmArgs are the install/upgrade arguments; extra values come last so a
// test can override them.
func (e *env) helmArgs(verb string, extra ...string) []string {
	args := []string{verb}
	if verb == "upgrade" && len(extra) > 0 && extra[0] == "--install" {
		args, extra = append(args, "--install"), extra[1:]
	}
	args = append(args, release, e.chart, "-n", systemNS, "--wait", "--timeout", "3m",
		"--set", "cluster.id="+clusterID,
		"--set", "nats.url="+e.podNATSURL,
		"--set", "nats.credentialsSecret="+devserver.SecretName,
		"--set", "logLevel=debug",
		// a new pod per run, so a reused cluster runs the freshly loaded :dev image
		"--set-string", "podAnnotations."+strings.ReplaceAll(runAnnotation, ".", `\.`)+"="+runID,
		"--set", "job.keepFailedFor=10m")
	return append(args, extra...)
}

// prepareSystemNamespace creates sc-system with Pod Security "restricted"
// enforced and the agent's NATS credentials Secret, as a cluster admin would.
func (e *env) prepareSystemNamespace(ctx context.Context) error {
	cs := e.cluster.Clientset
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS, Labels: restrictedLabels()}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s: %w", systemNS, err)
	}
	// A reused cluster keeps records of earlier runs whose namespaces are
	// gone; they would fail every render. Start from empty records.
	sel := metav1.ListOptions{LabelSelector: record.Selector}
	if err := cs.CoreV1().ConfigMaps(systemNS).DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil {
		return fmt.Errorf("remove earlier records: %w", err)
	}
	if err := cs.CoreV1().Secrets(systemNS).DeleteCollection(ctx, metav1.DeleteOptions{}, sel); err != nil {
		return fmt.Errorf("remove earlier credential records: %w", err)
	}
	creds, _ := e.nats.Cluster(clusterID)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: devserver.SecretName, Namespace: systemNS},
		StringData: map[string]string{"user": creds.User, "password": creds.Password}}
	_ = cs.CoreV1().Secrets(systemNS).Delete(ctx, sec.Name, metav1.DeleteOptions{})
	if _, err := cs.CoreV1().Secrets(systemNS).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create NATS credentials Secret: %w", err)
	}
	return nil
}

func restrictedLabels() map[string]string {
	return map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	}
}

// targetNamespace is a per-test namespace with Pod Security "restricted" enforced.
func (e *env) targetNamespace(t *testing.T) string {
	ns := e.cluster.TestNamespace(t)
	ctx := context.Background()
	obj, err := e.cluster.Clientset.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	require.NoError(t, err)
	for k, v := range restrictedLabels() {
		obj.Labels[k] = v
	}
	_, err = e.cluster.Clientset.CoreV1().Namespaces().Update(ctx, obj, metav1.UpdateOptions{})
	require.NoError(t, err)
	return ns
}

func nodeAddress(ctx context.Context, c *testbed.Cluster) (string, error) {
	nodes, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				return a.Address, nil
			}
		}
	}
	return "", fmt.Errorf("no node has an InternalIP")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func deploymentReady(d *appsv1.Deployment) bool {
	return d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas == *d.Spec.Replicas &&
		d.Status.UpdatedReplicas == *d.Spec.Replicas
}
