package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// KubeVersion is the Kubernetes release the test bed runs. It must match the
// kubebin module's k8s.io/kubernetes requirement.
const KubeVersion = "v1.34.4"

// KubeBinaries are the programs built by the kubebin module.
var KubeBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}

// kubebinPackages are the build targets, in KubeBinaries order.
var kubebinPackages = []string{
	"./cmd/etcd",
	"k8s.io/kubernetes/cmd/kube-apiserver",
	"k8s.io/kubernetes/cmd/kube-controller-manager",
	"k8s.io/kubernetes/cmd/kube-scheduler",
	"k8s.io/kubernetes/cmd/kubelet",
	"k8s.io/kubernetes/cmd/kube-proxy",
}

// CacheDir is the machine-wide cache of the project (outside the repository
// so that `git clean` does not cost a 10 minute rebuild).
func CacheDir() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "sc-extension")
}

// BinDir holds the built Kubernetes binaries; SC_KUBE_BIN_DIR overrides it
// (e.g. to point at binaries restored from a CI cache).
func BinDir() string {
	if d := os.Getenv("SC_KUBE_BIN_DIR"); d != "" {
		return d
	}
	return filepath.Join(CacheDir(), "kube-"+KubeVersion, "bin")
}

// ErrBinariesMissing is wrapped by errors about missing Kubernetes binaries.
var ErrBinariesMissing = errors.New("kube binaries missing: run make kube-binaries")

// checkBinaries returns ErrBinariesMissing (wrapped, naming the files) unless
// every binary is in dir.
func checkBinaries(dir string) error {
	var missing []string
	for _, b := range KubeBinaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w (%s not in %s)", ErrBinariesMissing, strings.Join(missing, ", "), dir)
	}
	return nil
}

// binariesFresh reports whether every binary exists and is newer than the
// kubebin module's go.mod and go.sum (a version bump there means a rebuild).
func binariesFresh(binDir, kubebinDir string) (bool, string) {
	var newest time.Time
	for _, f := range []string{"go.mod", "go.sum"} {
		fi, err := os.Stat(filepath.Join(kubebinDir, f))
		if err != nil {
			return false, err.Error()
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	for _, b := range KubeBinaries {
		fi, err := os.Stat(filepath.Join(binDir, b))
		if err != nil {
			return false, b + " missing"
		}
		if !fi.ModTime().After(newest) {
			return false, b + " older than kubebin go.mod/go.sum"
		}
	}
	return true, ""
}

// versionLDFlags stamp the release into the binaries, as the upstream build
// does, so that nodes and `kubectl version` report KubeVersion.
func versionLDFlags() string {
	minor := strings.Split(strings.TrimPrefix(KubeVersion, "v"), ".")[1]
	var b strings.Builder
	b.WriteString("-s -w")
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		fmt.Fprintf(&b, " -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s", pkg, KubeVersion, pkg, pkg, minor)
	}
	b.WriteString(" -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=2026-01-01T00:00:00Z")
	return b.String()
}

// BuildKubeBinaries builds the Kubernetes and etcd binaries from the kubebin
// module into BinDir, unless they are already there and fresh. It holds a
// file lock so that concurrent `make` runs build once, and builds into a
// temporary directory renamed into place so that a test binary never sees a
// half-written file.
func BuildKubeBinaries(ctx context.Context, root string, progress io.Writer) error {
	binDir := BinDir()
	kubebin := filepath.Join(root, "e2e", "testbed", "kubebin")
	if err := os.MkdirAll(filepath.Dir(binDir), 0o755); err != nil {
		return fmt.Errorf("kube-binaries: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(filepath.Dir(binDir), ".build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("kube-binaries: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("kube-binaries: lock: %w", err)
	}
	if ok, _ := binariesFresh(binDir, kubebin); ok {
		fmt.Fprintf(progress, "testbed: kube binaries %s up to date in %s\n", KubeVersion, binDir)
		return nil
	}
	_, why := binariesFresh(binDir, kubebin)
	fmt.Fprintf(progress, "testbed: building %s binaries (%s) into %s; about 10 min on 2 cores with a cold Go cache\n", KubeVersion, why, binDir)
	tmp, err := os.MkdirTemp(filepath.Dir(binDir), "bin.tmp-")
	if err != nil {
		return fmt.Errorf("kube-binaries: %w", err)
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	args := append([]string{"build", "-trimpath", "-ldflags", versionLDFlags(), "-o", tmp + "/"}, kubebinPackages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = kubebin
	// GOWORK=off: a go.work at the root must not pull the product module in.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOWORK=off")
	cmd.Stdout, cmd.Stderr = progress, progress
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kube-binaries: go build: %w", err)
	}
	fmt.Fprintf(progress, "testbed: go build of %d binaries took %s\n", len(KubeBinaries), time.Since(start).Round(time.Second))
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return fmt.Errorf("kube-binaries: %w", err)
	}
	for _, b := range KubeBinaries {
		if err := os.Rename(filepath.Join(tmp, b), filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("kube-binaries: %w", err)
		}
		fmt.Fprintf(progress, "testbed: installed %s\n", filepath.Join(binDir, b))
	}
	return nil
}
