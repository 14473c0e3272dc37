//go:build e2e

package testbed

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestNamespaceAndLabelNamesAreValid(t *testing.T) {
	for _, name := range []string{
		"TestX",
		"TestSomething/with a subtest/and#odd_chars",
		strings.Repeat("TestVeryLong", 20),
		"Test__/--",
	} {
		ns := namespaceName(name)
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			t.Errorf("namespace %q for %q: %v", ns, name, errs)
		}
		if lv := labelValue(name); len(validation.IsValidLabelValue(lv)) > 0 {
			t.Errorf("label value %q for %q: %v", lv, name, validation.IsValidLabelValue(lv))
		}
		if p := pathSafe(name); strings.Contains(p, "..") || filepath.IsAbs(p) {
			t.Errorf("path %q for %q escapes", p, name)
		}
	}
	if a, b := namespaceName("TestX"), namespaceName("TestX"); a == b {
		t.Error("namespace names are not unique")
	}
	if got := pathSafe("TestA/sub case/../x"); got != "TestA/sub_case/_/x" {
		t.Errorf("pathSafe: %q", got)
	}
}

func TestCheckBinariesNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	err := checkBinaries(dir)
	if !errors.Is(err, ErrBinariesMissing) || !strings.Contains(err.Error(), "kube binaries missing: run make kube-binaries") {
		t.Fatalf("got %v", err)
	}
	for _, b := range KubeBinaries {
		if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/true\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkBinaries(dir); err != nil {
		t.Fatal(err)
	}
}

func TestBinariesFreshComparesWithGoSum(t *testing.T) {
	bin, mod := t.TempDir(), t.TempDir()
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := os.WriteFile(filepath.Join(mod, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(mod, f), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _ := binariesFresh(bin, mod); ok {
		t.Fatal("empty bin dir is fresh")
	}
	for _, b := range KubeBinaries {
		if err := os.WriteFile(filepath.Join(bin, b), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if ok, why := binariesFresh(bin, mod); !ok {
		t.Fatalf("new binaries not fresh: %s", why)
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(mod, "go.sum"), future, future); err != nil {
		t.Fatal(err)
	}
	if ok, _ := binariesFresh(bin, mod); ok {
		t.Fatal("binaries older than go.sum are fresh")
	}
}

func TestVersionLDFlags(t *testing.T) {
	f := versionLDFlags()
	for _, want := range []string{"-s -w", "k8s.io/component-base/version.gitVersion=" + KubeVersion, "k8s.io/component-base/version.gitMinor=34", "k8s.io/client-go/pkg/version.gitVersion=" + KubeVersion} {
		if !strings.Contains(f, want) {
			t.Errorf("ldflags %q lack %q", f, want)
		}
	}
}

func TestGeneratedConfigsPointIntoTheInstance(t *testing.T) {
	in := &instance{l: Layout{Dir: "/st"}, nodeName: "n1"}
	for name, cfg := range map[string]string{"containerd": in.containerdConfig(), "kubelet": in.kubeletConfig(), "kube-proxy": in.kubeProxyConfig(), "cni": in.cniConfig()} {
		if !strings.Contains(cfg, "/st/") {
			t.Errorf("%s config does not use the instance dir:\n%s", name, cfg)
		}
	}
	if !strings.Contains(in.containerdConfig(), "restrict_oom_score_adj = true") || !strings.Contains(in.containerdConfig(), PauseImage) {
		t.Error("containerd config lacks the oom clamp or the local pause image")
	}
	if !strings.Contains(in.kubeletConfig(), "failCgroupV1: false") {
		t.Error("kubelet config refuses cgroup v1 hosts")
	}
}
