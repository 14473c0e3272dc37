package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Mode is the shape of a cluster.
type Mode string

const (
	ModeAPI  Mode = "api"  // etcd, kube-apiserver, kube-controller-manager
	ModeFull Mode = "full" // plus containerd, kubelet, kube-proxy, kube-scheduler
)

// instance is one running (or starting) test-bed cluster.
type instance struct {
	l        Layout
	binDir   string
	mode     Mode
	detach   bool   // components outlive this process (CLI) or die with it (tests)
	bindAddr string // apiserver bind address
	nodeName string
	nodeIP   net.IP // nil: let the apiserver choose its advertise address
	apiPort  int
	etcdPort int
	peerPort int
	cmPort   int // controller-manager secure port; 0 disables it
	progress io.Writer
	procs    []*proc
}

func (in *instance) server() string { return "https://127.0.0.1:" + strconv.Itoa(in.apiPort) }

func (in *instance) start(name string, args ...string) (*proc, error) {
	p, err := startProc(procSpec{
		Name: name, Path: in.bin(name), Args: args, Dir: in.l.Dir,
		Log: in.l.LogFile(name), PidFile: in.l.PidFile(name), Detach: in.detach,
	})
	if err != nil {
		return nil, err
	}
	in.procs = append(in.procs, p)
	return p, nil
}

func (in *instance) bin(name string) string {
	if name == "containerd" {
		return containerdPath
	}
	return filepath.Join(in.binDir, name)
}

// prepare creates the directories, PKI and kubeconfigs of the instance.
func (in *instance) prepare() error {
	for _, d := range []string{in.l.LogsDir(), in.l.PidsDir(), in.l.EtcdDataDir(), in.l.KubeconfigDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(in.l.EtcdDataDir(), 0o700); err != nil { // etcd warns otherwise
		return err
	}
	if err := ensurePKI(in.l.PKIDir(), clusterCerts(in.nodeName, in.nodeIP)); err != nil {
		return err
	}
	return writeKubeconfigs(in.l, in.server())
}

func (in *instance) startEtcd(ctx context.Context) error {
	client := "http://127.0.0.1:" + strconv.Itoa(in.etcdPort)
	peer := "http://127.0.0.1:" + strconv.Itoa(in.peerPort)
	p, err := in.start("etcd",
		"--name=sc-testbed", "--data-dir="+in.l.EtcdDataDir(),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=sc-testbed="+peer,
		// Test data is disposable: skipping fsync makes etcd (and so every
		// API write) several times faster on a loaded CI disk.
		"--unsafe-no-fsync=true",
		"--quota-backend-bytes=2147483648", "--log-level=warn")
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: time.Second}
	return in.waitFor(ctx, p, 30*time.Second, "etcd health", func(ctx context.Context) (bool, error) {
		resp, err := hc.Get(client + "/health")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

func (in *instance) startAPIServer(ctx context.Context) error {
	pki := in.l.PKIDir()
	args := []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(in.etcdPort),
		"--bind-address=" + in.bindAddr, "--secure-port=" + strconv.Itoa(in.apiPort),
		"--tls-cert-file=" + filepath.Join(pki, "apiserver.crt"), "--tls-private-key-file=" + filepath.Join(pki, "apiserver.key"),
		"--client-ca-file=" + filepath.Join(pki, caCertFile),
		"--service-account-issuer=" + saIssuer,
		"--service-account-key-file=" + filepath.Join(pki, saPubFile),
		"--service-account-signing-key-file=" + filepath.Join(pki, saKeyFile),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--kubelet-client-certificate=" + filepath.Join(pki, "apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + filepath.Join(pki, "apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--allow-privileged=true",
		"--profiling=false",
	}
	if in.nodeIP != nil {
		args = append(args, "--advertise-address="+in.nodeIP.String())
	}
	p, err := in.start("kube-apiserver", args...)
	if err != nil {
		return err
	}
	cs, err := in.clientset()
	if err != nil {
		return err
	}
	return in.waitFor(ctx, p, 90*time.Second, "kube-apiserver /readyz", func(ctx context.Context) (bool, error) {
		err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
		return err == nil, nil
	})
}

func (in *instance) startControllerManager() error {
	pki := in.l.PKIDir()
	kc := in.l.Kubeconfig("controller-manager")
	args := []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--service-account-private-key-file=" + filepath.Join(pki, saKeyFile),
		"--root-ca-file=" + filepath.Join(pki, caCertFile),
		"--cluster-signing-cert-file=" + filepath.Join(pki, caCertFile),
		"--cluster-signing-key-file=" + filepath.Join(pki, caKeyFile),
		// Every controller acts as its own ServiceAccount with the
		// bootstrap RBAC roles, exactly as in kubeadm clusters: tests see
		// real permission errors of the built-in controllers.
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(in.cmPort),
		"--leader-elect=false",
	}
	if in.mode == ModeFull {
		args = append(args, "--allocate-node-cidrs=true", "--cluster-cidr="+ClusterCIDR, "--node-cidr-mask-size=24",
			"--controllers=*,bootstrapsigner,tokencleaner")
	}
	_, err := in.start("kube-controller-manager", args...)
	return err
}

func (in *instance) startScheduler() error {
	kc := in.l.Kubeconfig("scheduler")
	_, err := in.start("kube-scheduler",
		"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
		"--bind-address=127.0.0.1", "--leader-elect=false")
	return err
}

// startControlPlane starts etcd, the apiserver and the controller-manager
// and waits until the apiserver is ready.
func (in *instance) startControlPlane(ctx context.Context, s *stepper) error {
	if err := s.run("etcd", func() error { return in.startEtcd(ctx) }); err != nil {
		return err
	}
	if err := s.run("kube-apiserver (until /readyz)", func() error { return in.startAPIServer(ctx) }); err != nil {
		return err
	}
	return s.run("kube-controller-manager", in.startControllerManager)
}

// waitDefaultServiceAccount waits for the ServiceAccount controller: before
// it ran, pods cannot be created in the namespace.
func (in *instance) waitDefaultServiceAccount(ctx context.Context) error {
	cs, err := in.clientset()
	if err != nil {
		return err
	}
	cm := in.find("kube-controller-manager")
	return in.waitFor(ctx, cm, 90*time.Second, "ServiceAccount default/default", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

func (in *instance) find(name string) *proc {
	for _, p := range in.procs {
		if p.rec.Name == name {
			return p
		}
	}
	return nil
}

func (in *instance) restConfig() (*rest.Config, error) {
	return restConfigFromKubeconfig(in.l.AdminKubeconfig())
}

func (in *instance) clientset() (kubernetes.Interface, error) {
	cfg, err := in.restConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 5 * time.Second
	return kubernetes.NewForConfig(cfg)
}

// errExited reports a component that died while we waited for it.
var errExited = errors.New("process exited")

// waitFor polls cond until it holds, the timeout expires, or p (if not nil)
// exits; errors carry the tail of p's log because that is where the reason is.
func (in *instance) waitFor(ctx context.Context, p *proc, timeout time.Duration, what string, cond wait.ConditionWithContextFunc) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if p != nil && p.exited() {
			return false, fmt.Errorf("%s %w (%w)", p.rec.Name, errExited, p.err)
		}
		return cond(ctx)
	})
	if err == nil {
		return nil
	}
	name := "?"
	if p != nil {
		name = p.rec.Name
	}
	return fmt.Errorf("waiting for %s: %w\n--- last lines of %s ---\n%s", what, err, in.l.LogFile(name), tailFile(in.l.LogFile(name), 25))
}

// stopAll stops the started processes in reverse order.
func (in *instance) stopAll(ctx context.Context) error {
	var errs []error
	for i := len(in.procs) - 1; i >= 0; i-- {
		if err := stopRecorded(ctx, hostProc, in.procs[i].rec, 15*time.Second); err != nil {
			errs = append(errs, err)
		}
		_ = os.Remove(in.l.PidFile(in.procs[i].rec.Name))
	}
	in.procs = nil
	return errors.Join(errs...)
}

// tailFile returns the last n lines of a (log) file.
func tailFile(path string, n int) string {
	b, err := readTail(path, 64<<10)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// readTail reads at most max bytes from the end of a file.
func readTail(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := fi.Size() - max
	if off < 0 {
		off = 0
	}
	buf := make([]byte, fi.Size()-off)
	_, err = f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf, nil
}

// freePorts returns n distinct free TCP ports on loopback. They are free when
// returned, not reserved: callers retry when a component loses the race.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ignoreNotFound is apierrors.IsNotFound as an error filter.
func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// stepper prints one progress line per step with its duration.
type stepper struct {
	w     io.Writer
	n     int
	total int
}

func (s *stepper) run(name string, f func() error) error {
	s.n++
	t := time.Now()
	err := f()
	status := "ok"
	if err != nil {
		status = "FAILED"
	}
	if s.w != nil {
		fmt.Fprintf(s.w, "testbed: [%d/%d] %s: %s (%s)\n", s.n, s.total, name, status, time.Since(t).Round(10*time.Millisecond))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
