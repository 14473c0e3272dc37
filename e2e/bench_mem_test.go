//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// procMem is a process's memory as the kernel counts it, in bytes: RSS now
// (VmRSS) and the high-water mark (VmHWM) since the process started or its
// peak was last reset.
type procMem struct{ RSS, Peak float64 }

// errNoProc: the process is not visible in this machine's /proc (a kind
// cluster runs its node in a container).
var errNoProc = errors.New("process not found in /proc")

func readProcMem(pid int) (procMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	return parseProcStatus(string(b))
}

// parseProcStatus reads VmRSS and VmHWM ("VmHWM:   12345 kB") from
// /proc/PID/status.
func parseProcStatus(s string) (procMem, error) {
	var m procMem
	var seen int
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return procMem{}, fmt.Errorf("malformed %s line %q", k, line)
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return procMem{}, fmt.Errorf("malformed %s line %q: %w", k, line, err)
		}
		if k == "VmRSS" {
			m.RSS = kb * 1024
		} else {
			m.Peak = kb * 1024
		}
		seen++
	}
	if seen != 2 {
		return procMem{}, errors.New("status has no VmRSS and VmHWM")
	}
	return m, nil
}

// resetPeak starts a new high-water mark: writing 5 to clear_refs sets
// VmHWM to the current RSS (proc(5)). Needs the process's owner or root.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// pidOfContainer finds the process of a running container on this machine
// by its container id, which is the last element of the process's cgroup
// path (cgroupfs: .../pod<uid>/<id>; systemd: cri-containerd-<id>.scope).
func pidOfContainer(procRoot, containerID string) (int, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, err
	}
	best := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cgroup"))
		if err != nil || !strings.Contains(string(b), containerID) {
			continue
		}
		// A container holding more than one process: its first is the
		// entrypoint.
		if best == 0 || pid < best {
			best = pid
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("container %.12s: %w", containerID, errNoProc)
	}
	return best, nil
}

// agentPid is the host pid of the leading agent's container.
func (e *env) agentPid(t *testing.T) (int, error) {
	ctx := context.Background()
	pod, err := e.cluster.Clientset.CoreV1().Pods(systemNS).Get(ctx, e.leaderPod(ctx, t, nil), metav1.GetOptions{})
	require.NoError(t, err)
	if len(pod.Status.ContainerStatuses) == 0 {
		return 0, fmt.Errorf("pod %s has no container status", pod.Name)
	}
	_, id, ok := strings.Cut(pod.Status.ContainerStatuses[0].ContainerID, "://")
	if !ok || id == "" {
		return 0, fmt.Errorf("pod %s: container id %q", pod.Name, pod.Status.ContainerStatuses[0].ContainerID)
	}
	return pidOfContainer("/proc", id)
}

// agentMem is the leading agent's memory from /proc; where the node's
// processes are not visible here, its RSS from its own metrics and no peak.
type agentMem struct {
	pid int // 0 when /proc cannot see it
	e   *env
}

func (e *env) agentMemory(t *testing.T) *agentMem {
	pid, err := e.agentPid(t)
	if err != nil {
		t.Logf("agent memory from its metrics only (no peak): %v", err)
		return &agentMem{e: e}
	}
	return &agentMem{pid: pid, e: e}
}

// read returns RSS and peak; Peak is 0 when unknown.
func (a *agentMem) read(t *testing.T) procMem {
	if a.pid == 0 {
		return procMem{RSS: a.e.agentRSS(t)}
	}
	m, err := readProcMem(a.pid)
	require.NoError(t, err, "agent pid %d", a.pid)
	return m
}

// resetPeak starts the agent's high-water mark anew; false if it could not.
func (a *agentMem) resetPeak(t *testing.T) bool {
	if a.pid == 0 {
		return false
	}
	if err := resetPeak(a.pid); err != nil {
		t.Logf("agent peak RSS counts from its start: %v", err)
		return false
	}
	return true
}

func mib(b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", b/1048576)
}

func TestParseProcStatusReadsRSSAndPeak(t *testing.T) {
	m, err := parseProcStatus("Name:\tagent\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t9\n")
	require.NoError(t, err)
	require.Equal(t, procMem{RSS: 40 << 20, Peak: 50 << 20}, m)
	_, err = parseProcStatus("Name:\tkthreadd\nThreads:\t1\n")
	require.Error(t, err, "a kernel thread has no VmRSS")
	_, err = parseProcStatus("VmHWM:\t12 MB\nVmRSS:\t1 kB\n")
	require.Error(t, err)
}

func TestPidOfContainerFindsTheEntrypointByCgroup(t *testing.T) {
	root := t.TempDir()
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	proc := map[string]string{
		"1":    "4:memory:/\n",
		"4242": "4:memory:/kubepods/besteffort/pod1234/" + id + "\n",
		"4300": "4:memory:/kubepods/besteffort/pod1234/" + id + "\n",       // a child of the entrypoint
		"5000": "4:memory:/kubepods/besteffort/pod1234/fedcba9876543210\n", // the pause container
		"self": "4:memory:/\n",
	}
	for pid, cg := range proc {
		require.NoError(t, os.MkdirAll(filepath.Join(root, pid), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, pid, "cgroup"), []byte(cg), 0o644))
	}
	pid, err := pidOfContainer(root, id)
	require.NoError(t, err)
	require.Equal(t, 4242, pid)
	_, err = pidOfContainer(root, "feedfeedfeed")
	require.ErrorIs(t, err, errNoProc)
}
