package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// baseline is what the host looked like before the first start of a full
// cluster. Teardown restores or spares exactly these things, so that it
// neither leaves the test bed's changes behind nor removes what someone
// else created.
type baseline struct {
	Sysctls  map[string]string `json:"sysctls"`  // original values of the sysctls the node components change
	Chains   []string          `json:"chains"`   // pre-existing iptables chains ("iptables-save:nat/CHAIN")
	Netns    []string          `json:"netns"`    // pre-existing /run/netns entries
	Bridge   bool              `json:"bridge"`   // cni0 existed already
	Kubepods bool              `json:"kubepods"` // a kubepods cgroup existed already
}

// touchedSysctls are set by the kubelet (protectKernelDefaults=false:
// vm.overcommit_memory, kernel.panic, ...) and the bridge CNI plugin
// (ip_forward). kube-proxy's are avoided by its configuration.
var touchedSysctls = []string{
	"vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
	"kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.ip_forward",
	"net.ipv4.conf.all.route_localnet",
}

func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

func readSysctl(name string) (string, error) {
	b, err := os.ReadFile(sysctlPath(name))
	return strings.TrimSpace(string(b)), err
}

func kubepodsCgroups() []string {
	m, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if _, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil {
		m = append(m, "/sys/fs/cgroup/kubepods") // cgroup v2
	}
	return m
}

// recordBaseline snapshots the host unless a snapshot exists already: after
// a crash the old snapshot is the truthful one.
func recordBaseline(ctx context.Context, l Layout) error {
	if _, err := os.Stat(l.BaselineFile()); err == nil {
		return nil
	}
	b := baseline{Sysctls: map[string]string{}, Chains: snapshotChains(ctx), Netns: listNetns(), Kubepods: len(kubepodsCgroups()) > 0}
	for _, s := range touchedSysctls {
		if v, err := readSysctl(s); err == nil {
			b.Sysctls[s] = v
		}
	}
	if _, err := net.InterfaceByName(CNIBridge); err == nil {
		b.Bridge = true
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(l.BaselineFile(), data, 0o644)
}

// loadBaseline returns the snapshot, or nil if there is none (then teardown
// treats every KUBE-*/CNI-* chain and cni-* netns as the test bed's).
func loadBaseline(l Layout) (*baseline, error) {
	data, err := os.ReadFile(l.BaselineFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var b baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%s: %w", l.BaselineFile(), err)
	}
	return &b, nil
}

// restoreSysctls writes back the recorded values that changed.
func restoreSysctls(b *baseline) error {
	var errs []error
	for name, want := range b.Sysctls {
		if cur, err := readSysctl(name); err == nil && cur != want {
			if err := os.WriteFile(sysctlPath(name), []byte(want), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restore %s=%s: %w", name, want, err))
			}
		}
	}
	return errors.Join(errs...)
}
