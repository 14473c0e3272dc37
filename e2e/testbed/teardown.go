package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopOrder is the order in which components are stopped: the kubelet first
// so that it does not restart what is being removed, containerd last because
// the pods are removed through it.
var stopOrder = []string{"kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd", "containerd"}

const shimName = "containerd-shim-runc-v2"

// ownedProc is a process found by scanning /proc that belongs to an
// instance even though no (valid) PID file names it, e.g. after a crash
// between start and PID-file write, or a deleted pids/ directory.
type ownedProc struct {
	procRecord
	shim bool
}

// findOwned scans the process table for processes of the instance in dir.
// A process belongs to the instance only if its program is one of the test
// bed's components and it references the instance directory: in its argv
// (every component gets a flag pointing there; shims get the instance's
// containerd socket) or through an open file below it (e.g. containerd
// holding its bolt database lock). self is excluded, as are processes not
// running a known component, so a shell sitting in the directory is safe.
// Children of owned shims are the pods' processes and owned as well.
func findOwned(fs procFS, dir string, self int) []ownedProc {
	dir = filepath.Clean(dir)
	under := func(s string) bool {
		return s == dir || strings.HasPrefix(s, dir+"/") || strings.Contains(s, "="+dir+"/")
	}
	known := map[string]bool{shimName: true}
	for _, n := range stopOrder {
		known[n] = true
	}
	pids, _ := fs.pids()
	var out []ownedProc
	shims := map[int]bool{}
	stats := map[int]procStat{}
	for _, pid := range pids {
		if pid == self {
			continue
		}
		st, err := fs.stat(pid)
		if err != nil || st.State == 'Z' {
			continue
		}
		stats[pid] = st
		cl, err := fs.cmdline(pid)
		if err != nil || len(cl) == 0 || !known[filepath.Base(cl[0])] {
			continue
		}
		mine := slices.ContainsFunc(cl[1:], under) || fs.holdsFileUnder(pid, dir)
		if !mine {
			continue
		}
		name := filepath.Base(cl[0])
		out = append(out, ownedProc{procRecord: procRecord{Name: name, PID: pid, StartTime: st.StartTime, Cmdline: cl}, shim: name == shimName})
		if name == shimName {
			shims[pid] = true
		}
	}
	for pid, st := range stats {
		if shims[st.PPID] {
			cl, _ := fs.cmdline(pid)
			out = append(out, ownedProc{procRecord: procRecord{Name: "pod process", PID: pid, StartTime: st.StartTime, Cmdline: cl}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

func (p procFS) holdsFileUnder(pid int, dir string) bool {
	fdDir := filepath.Join(p.root, strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		t, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err == nil && strings.HasPrefix(t, dir+"/") {
			return true
		}
	}
	return false
}

// TeardownOptions tune Teardown.
type TeardownOptions struct {
	Wipe     bool      // also delete etcd, containerd and kubelet state
	Progress io.Writer // one line per action
}

// Teardown stops every process of the instance in dir and removes what the
// node components left on the host: mounts below dir, pod network
// namespaces, the cni0 bridge, KUBE-*/CNI-* iptables chains, sysctl changes.
// It only relies on state found on disk and in /proc, so it also cleans up
// after a crashed or killed CLI, and it is idempotent.
func Teardown(ctx context.Context, dir string, opts TeardownOptions) error {
	l := Layout{Dir: dir}
	tl := &teardownLog{w: opts.Progress}
	say, note := tl.say, tl.note

	recs, bad, err := readPidFiles(l.PidsDir())
	note(err)
	for _, b := range bad {
		say("removing corrupt pid file %s", b)
		_ = os.Remove(b)
	}
	stop := func(name string) {
		rec, ok := recs[name]
		if !ok {
			return
		}
		switch hostProc.check(rec) {
		case procRunning:
			say("stopping %s (pid %d)", name, rec.PID)
			note(terminate(ctx, hostProc, rec, 20*time.Second))
		case procReplaced:
			say("pid file of %s names pid %d which is now another process: not signalled", name, rec.PID)
		}
		_ = os.Remove(l.PidFile(name))
	}
	for _, name := range stopOrder {
		if name == "containerd" {
			removeContainers(ctx, l, recs, say)
		}
		stop(name)
	}
	// Whatever is left was not (validly) recorded: stray components,
	// shims whose containerd died, and the pods' processes under them.
	killOwned(ctx, l, say, note)
	note(unmountUnder(l, say))

	b, err := loadBaseline(l)
	note(err)
	if b == nil && (exists(l.KubeletDir()) || exists(l.ContainerdDir())) {
		b = &baseline{} // node components ran but the snapshot is lost
	}
	// b == nil: no node component ever ran here (api mode, or a fresh
	// machine), so the host's chains and namespaces are not ours to touch.
	if b != nil {
		cleanHost(ctx, b, say, note)
		removeHostLeftovers(l, b)
	}

	if opts.Wipe {
		if left := mountsToUnmount(hostMountPoints(), l.Dir); len(left) > 0 {
			// Deleting through a mount would delete the mounted content.
			note(fmt.Errorf("not wiping %s: still mounted: %v", l.Dir, left))
		} else {
			for _, d := range l.dataDirs() {
				note(os.RemoveAll(d))
			}
			// The host is back to its baseline: the next start takes a new one.
			if err := os.Remove(l.BaselineFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
				note(err)
			}
			say("wiped cluster data in %s (PKI and kubeconfigs kept)", l.Dir)
		}
	}
	return errors.Join(tl.errs...)
}

// cleanHost removes pod network namespaces, iptables chains and the bridge
// created since the baseline, and restores the sysctls.
func cleanHost(ctx context.Context, b *baseline, say func(string, ...any), note func(error)) {
	inUse := netnsInUse(hostProc)
	for _, ns := range staleNetns(listNetns(), toSet(b.Netns), inUse) {
		p := filepath.Join(netnsDir, ns)
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
		if err := os.Remove(p); err == nil {
			say("removed network namespace %s", ns)
		}
	}
	note(cleanIptables(ctx, b.Chains))
	if _, err := net.InterfaceByName(CNIBridge); err == nil && !b.Bridge {
		if out, err := exec.CommandContext(ctx, "ip", "link", "delete", CNIBridge).CombinedOutput(); err != nil {
			note(fmt.Errorf("ip link delete %s: %w: %s", CNIBridge, err, strings.TrimSpace(string(out))))
		} else {
			say("removed bridge %s", CNIBridge)
		}
	}
	note(restoreSysctls(b))
}

// teardownLog prints actions and collects errors: teardown goes on after
// an error so that one stuck mount does not leave every process running.
type teardownLog struct {
	w    io.Writer
	errs []error
}

func (t *teardownLog) say(format string, a ...any) {
	if t.w != nil {
		fmt.Fprintf(t.w, "testbed: teardown: "+format+"\n", a...)
	}
}

func (t *teardownLog) note(err error) {
	if err != nil {
		t.errs = append(t.errs, err)
		t.say("%v", err)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// removeContainers kills and deletes every container of the instance's
// containerd while it still runs, so that the shims exit and CNI DEL runs
// for the sandboxes.
func removeContainers(ctx context.Context, l Layout, recs map[string]procRecord, say func(string, ...any)) {
	rec, ok := recs["containerd"]
	if !ok || hostProc.check(rec) != procRunning {
		return
	}
	ids, err := ctrList(ctx, l, "containers", "list", "-q")
	if err != nil || len(ids) == 0 {
		return
	}
	say("removing %d containers", len(ids))
	for _, id := range ids {
		_ = ctr(ctx, l, "tasks", "kill", "--signal", "SIGKILL", id)
	}
	for _, id := range ids {
		// tasks delete waits for the exit; -f kills first if still running.
		_ = ctr(ctx, l, "tasks", "delete", "--force", id)
		_ = ctr(ctx, l, "containers", "delete", id)
	}
}

func ctrList(ctx context.Context, l Layout, args ...string) ([]string, error) {
	out, err := exec.CommandContext(ctx, ctrPath, append([]string{"--address", l.ContainerdSocket(), "--namespace", CRINamespace}, args...)...).Output()
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// killOwned kills the instance's unrecorded processes: pod processes first,
// then shims, then components in stopOrder.
func killOwned(ctx context.Context, l Layout, say func(string, ...any), note func(error)) {
	owned := findOwned(hostProc, l.Dir, os.Getpid())
	rank := func(p ownedProc) int {
		switch {
		case p.Name == "pod process":
			return -2
		case p.shim:
			return -1
		}
		return slices.Index(stopOrder, p.Name)
	}
	sort.SliceStable(owned, func(i, j int) bool { return rank(owned[i]) < rank(owned[j]) })
	for _, p := range owned {
		if hostProc.check(p.procRecord) != procRunning {
			continue
		}
		say("stopping unrecorded %s (pid %d)", p.Name, p.PID)
		grace := 10 * time.Second
		if rank(p) < 0 {
			grace = 0 // pods and shims of a dead runtime: nothing to save
		}
		note(terminate(ctx, hostProc, p.procRecord, grace))
	}
}

// unmountUnder unmounts everything below the instance directory (kubelet
// volume tmpfs, containerd rootfs overlays, shm), children first; a busy
// mount is lazily detached rather than left behind.
func unmountUnder(l Layout, say func(string, ...any)) error {
	var errs []error
	for _, m := range mountsToUnmount(hostMountPoints(), l.Dir) {
		err := syscall.Unmount(m, 0)
		if errors.Is(err, syscall.EBUSY) {
			err = syscall.Unmount(m, syscall.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("umount %s: %w", m, err))
			continue
		}
		say("unmounted %s", m)
	}
	return errors.Join(errs...)
}

// removeHostLeftovers deletes what the node components write outside the
// instance directory and cannot be configured away: libcni's result cache,
// the kubelet's /var/log/containers symlinks, empty kubepods cgroups.
func removeHostLeftovers(l Layout, b *baseline) {
	// libcni caches one result per network and sandbox: ours is named after
	// the network, containerd's loopback one after the sandbox ID.
	cached, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", CNINetworkName+"-*"))
	for _, id := range sandboxIDs(l) {
		m, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", "cni-loopback-"+id+"-*"))
		cached = append(cached, m...)
	}
	for _, f := range cached {
		_ = os.Remove(f)
	}
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, f := range links {
		if t, err := os.Readlink(f); err == nil && strings.HasPrefix(t, l.Dir+"/") {
			_ = os.Remove(f)
		}
	}
	if !b.Kubepods {
		for _, cg := range kubepodsCgroups() {
			removeEmptyCgroups(cg)
		}
	}
}

// removeEmptyCgroups removes a cgroup tree bottom-up; rmdir fails on
// cgroups that still have processes, which are then left alone.
func removeEmptyCgroups(root string) {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = syscall.Rmdir(dirs[i])
	}
}

func toSet(s []string) map[string]bool {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return m
}

// sandboxIDs lists the pod sandboxes containerd's CRI plugin knows in the
// instance.
func sandboxIDs(l Layout) []string {
	var ids []string
	for _, sub := range []string{"root", "state"} {
		ents, _ := os.ReadDir(filepath.Join(l.ContainerdDir(), sub, "io.containerd.grpc.v1.cri", "sandboxes"))
		for _, e := range ents {
			ids = append(ids, e.Name())
		}
	}
	return ids
}
