package testbed

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRestartedProcessInheritsNoDescriptor: a descriptor opened without
// close-on-exec, as one inherited from `flock` is, reaches a child before
// closeInheritedOnExec and not after it (the restarted API server held the
// shared cluster's lock this way).
func TestRestartedProcessInheritsNoDescriptor(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "cluster.lock")
	fd, err := syscall.Open(lock, syscall.O_CREAT|syscall.O_RDWR, 0o600) // no O_CLOEXEC
	require.NoError(t, err)
	defer func() { _ = syscall.Close(fd) }()

	// test(1) opens nothing itself, so the number can only be the inherited one.
	childSees := func() bool {
		return exec.Command("test", "-e", "/proc/self/fd/"+strconv.Itoa(fd)).Run() == nil
	}
	require.True(t, childSees(), "the test's premise: an fd without close-on-exec is inherited")
	require.NoError(t, closeInheritedOnExec())
	require.False(t, childSees(), "fd %d still reaches a child", fd)
	_, err = os.Stat(lock)
	require.NoError(t, err)
}
