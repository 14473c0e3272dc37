package testbed

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// netnsDir is where CNI/containerd pin pod network namespaces (bind mounts).
const netnsDir = "/run/netns"

// parseMountPoints returns the mount points of a /proc/mounts-format text,
// with the kernel's octal escapes (\040 for space, ...) decoded.
func parseMountPoints(mounts string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(mounts))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 {
			out = append(out, unescapeMount(f[1]))
		}
	}
	return out
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsToUnmount selects the mount points at or below one of the dirs and
// orders them children first (a parent cannot be unmounted while a child is
// mounted on it). A path mounted several times appears as often, because
// each umount only removes the top one.
func mountsToUnmount(mountPoints []string, dirs ...string) []string {
	var out []string
	for _, m := range mountPoints {
		for _, d := range dirs {
			d = filepath.Clean(d)
			if m == d || strings.HasPrefix(m, d+"/") {
				out = append(out, m)
				break
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		di, dj := strings.Count(out[i], "/"), strings.Count(out[j], "/")
		if di != dj {
			return di > dj
		}
		return out[i] > out[j]
	})
	return out
}

func hostMountPoints() []string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	return parseMountPoints(string(b))
}

// staleNetns selects the pod network namespaces (cni-*) to remove: not there
// before the cluster started (baseline) and no process inside any more.
func staleNetns(names []string, baseline map[string]bool, inUse func(name string) bool) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, "cni-") && !baseline[n] && !inUse(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func listNetns() []string {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// netnsInUse reports whether any process lives in the named namespace, by
// comparing the pinned file's inode with every /proc/PID/ns/net.
func netnsInUse(fs procFS) func(string) bool {
	used := map[uint64]bool{}
	pids, _ := fs.pids()
	for _, pid := range pids {
		var st statT
		if statPath(filepath.Join(fs.root, strconv.Itoa(pid), "ns", "net"), &st) == nil {
			used[st.Ino] = true
		}
	}
	return func(name string) bool {
		var st statT
		if statPath(filepath.Join(netnsDir, name), &st) != nil {
			return false
		}
		return used[st.Ino]
	}
}
