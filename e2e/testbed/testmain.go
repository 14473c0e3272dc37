package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// apiEnv is the api-mode cluster of this test binary, set by RunWithAPI.
var apiEnv struct {
	mu  sync.Mutex
	cfg *rest.Config
}

// apiDirPrefix names the private instance directories in the temp dir.
const apiDirPrefix = "sc-testbed-api-"

// RunWithAPI is called from TestMain: it starts a private api-mode control
// plane (etcd + kube-apiserver + kube-controller-manager on free loopback
// ports, data in a temporary directory), runs the tests, stops it and
// returns the exit code. If E2E_KUBECONFIG is set it uses that cluster
// instead and starts nothing.
//
// The private control plane shares nothing with `make cluster` (other ports,
// other directory, no fixed ports at all), so several test binaries (go test
// -p N) and a running full cluster coexist. Its processes die with the test
// binary even if it is killed (parent-death signal).
func RunWithAPI(m *testing.M) int {
	if kc := os.Getenv("E2E_KUBECONFIG"); kc != "" {
		cfg, err := restConfigFromKubeconfig(kc)
		if err != nil {
			fmt.Fprintf(os.Stderr, "testbed: E2E_KUBECONFIG: %v\n", err)
			return 1
		}
		setAPIConfig(cfg)
		return m.Run()
	}
	if err := checkBinaries(BinDir()); err != nil {
		fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
		return 1
	}
	sweepStaleAPIDirs()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	in, err := startPrivateAPI(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbed: starting the api-mode control plane: %v\n", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		keepAPILogs(in.l)
	}
	if err := in.stopAll(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "testbed: stopping the control plane: %v\n", err)
	}
	_ = os.RemoveAll(in.l.Dir)
	setAPIConfig(nil)
	return code
}

// startPrivateAPI starts the control plane, retrying with new ports if a
// component lost a port to another process between probe and bind.
func startPrivateAPI(ctx context.Context) (*instance, error) {
	var errs []error
	for attempt := 1; attempt <= 3; attempt++ {
		dir, err := os.MkdirTemp("", apiDirPrefix)
		if err != nil {
			return nil, err
		}
		// owner lets a later run sweep this directory if we get killed.
		_ = writePidFile(filepath.Join(dir, "owner.json"), selfRecord())
		ports, err := freePorts(3)
		if err != nil {
			return nil, err
		}
		in := &instance{
			l: Layout{Dir: dir}, binDir: BinDir(), mode: ModeAPI, bindAddr: "127.0.0.1",
			nodeName: nodeName(), apiPort: ports[0], etcdPort: ports[1], peerPort: ports[2],
			cmPort: 0, // no fixed port: concurrent controller-managers would clash on 10257
		}
		if ip, err := nodeIP(); err == nil {
			in.nodeIP = ip
		}
		t := time.Now()
		s := &stepper{total: 5} // silent: go test output stays readable
		err = in.prepare()
		if err == nil {
			err = in.startControlPlane(ctx, s)
		}
		if err == nil {
			err = in.waitDefaultServiceAccount(ctx)
		}
		if err == nil {
			cfg, cerr := in.restConfig()
			if cerr == nil {
				setAPIConfig(cfg)
				fmt.Fprintf(os.Stderr, "testbed: api server %s ready in %s (%s)\n", in.server(), time.Since(t).Round(100*time.Millisecond), dir)
				return in, nil
			}
			err = cerr
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
		_ = in.stopAll(context.WithoutCancel(ctx))
		keepAPILogs(in.l)
		_ = os.RemoveAll(dir)
		if ctx.Err() != nil || !errors.Is(err, errExited) {
			break // only a died component (port race) is worth a retry
		}
	}
	return nil, errors.Join(errs...)
}

func setAPIConfig(cfg *rest.Config) {
	apiEnv.mu.Lock()
	defer apiEnv.mu.Unlock()
	apiEnv.cfg = cfg
}

// APIConfig returns a cluster-admin *rest.Config for the api server started
// by RunWithAPI (t.Fatal if none). Each call returns a copy the caller may
// modify.
func APIConfig(t testing.TB) *rest.Config {
	t.Helper()
	apiEnv.mu.Lock()
	defer apiEnv.mu.Unlock()
	if apiEnv.cfg == nil {
		t.Fatal("testbed: no api server: call testbed.RunWithAPI(m) from TestMain")
	}
	return rest.CopyConfig(apiEnv.cfg)
}

func selfRecord() procRecord {
	st, _ := hostProc.stat(os.Getpid())
	cl, _ := hostProc.cmdline(os.Getpid())
	return procRecord{Name: "owner", PID: os.Getpid(), StartTime: st.StartTime, Cmdline: cl}
}

// sweepStaleAPIDirs removes private instance directories whose test binary
// is gone (killed before it could clean up), stopping any component that
// still runs there; parent-death signals normally got those already.
func sweepStaleAPIDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), apiDirPrefix+"*"))
	for _, d := range dirs {
		owner, err := readPidFile(filepath.Join(d, "owner.json"))
		if err == nil && hostProc.check(owner) == procRunning {
			continue
		}
		if err != nil {
			// No owner file yet: maybe a start in progress; only sweep old ones.
			if fi, serr := os.Stat(d); serr != nil || time.Since(fi.ModTime()) < time.Hour {
				continue
			}
		}
		_ = Teardown(context.Background(), d, TeardownOptions{})
		_ = os.RemoveAll(d)
	}
}

// keepAPILogs copies the private control plane's logs to the artifacts
// directory when tests failed: the temp dir is deleted afterwards.
func keepAPILogs(l Layout) {
	pkg := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
	dst := filepath.Join(artifactsDir(), "api-"+pkg+"-"+strconv.Itoa(os.Getpid()))
	if err := copyLogs(l.LogsDir(), dst); err == nil {
		fmt.Fprintf(os.Stderr, "testbed: control-plane logs kept in %s\n", dst)
	}
}
