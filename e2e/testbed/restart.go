package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// ErrNotRestartable is returned for a cluster whose kube-apiserver is not a
// process of the local test bed (E2E_KUBECONFIG, kind): the test bed cannot
// restart what it did not start.
var ErrNotRestartable = errors.New("the cluster's kube-apiserver is not a process of the local test bed")

const (
	apiServerName = "kube-apiserver"
	// stopGrace keeps the outage short and its length predictable: a
	// client's leader election (10 s renew deadline) still holds when
	// whileDown runs.
	stopGrace = 2 * time.Second
)

// CanRestartAPIServer returns nil when RestartAPIServer can work on c, and
// an error wrapping ErrNotRestartable otherwise; a test skips on it before
// doing any work.
func (c *Cluster) CanRestartAPIServer() error {
	_, err := c.apiServerRecord()
	return err
}

func (c *Cluster) apiServerRecord() (procRecord, error) {
	p, ok := c.provider.(localProvider)
	if !ok {
		return procRecord{}, fmt.Errorf("%w (the cluster comes from %s)", ErrNotRestartable, c.provider.name())
	}
	l := Layout{Dir: p.dir}
	rec, err := readPidFile(l.PidFile(apiServerName))
	if err != nil {
		return procRecord{}, fmt.Errorf("%w: %w", ErrNotRestartable, err)
	}
	if st := hostProc.check(rec); st != procRunning {
		return procRecord{}, fmt.Errorf("%w: %s (pid %d) is %s", ErrNotRestartable, apiServerName, rec.PID, st)
	}
	return rec, nil
}

// RestartAPIServer stops the local cluster's kube-apiserver (SIGTERM, and
// SIGKILL after stopGrace: its graceful shutdown waits for long-running
// requests such as watches and log streams, measured at over 30 s, while
// its listener is closed at once; the state is in etcd, so nothing is
// lost), runs whileDown, if not nil, while it is down, then starts it again with the very command line it ran with and
// waits for /readyz. It returns how long the API was unavailable. The new
// process is detached like the one `make cluster` started: it outlives the
// test binary, and its PID file is rewritten so status and teardown find it.
// The API server is started again even when whileDown fails or ctx ends,
// because the cluster is shared.
func (c *Cluster) RestartAPIServer(ctx context.Context, whileDown func(context.Context) error) (time.Duration, error) {
	rec, err := c.apiServerRecord()
	if err != nil {
		return 0, err
	}
	l := Layout{Dir: c.provider.(localProvider).dir}
	t0 := time.Now()
	if err := stopRecorded(ctx, hostProc, rec, stopGrace); err != nil {
		return 0, fmt.Errorf("stop %s: %w", apiServerName, err)
	}
	var downErr error
	if whileDown != nil {
		downErr = whileDown(ctx)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	in := &instance{l: l, detach: true}
	if err := closeInheritedOnExec(); err != nil {
		return 0, errors.Join(downErr, err)
	}
	p, err := startProc(procSpec{
		Name: apiServerName, Path: rec.Cmdline[0], Args: rec.Cmdline[1:], Dir: l.Dir,
		Log: l.LogFile(apiServerName), PidFile: l.PidFile(apiServerName), Detach: true,
	})
	if err != nil {
		return 0, errors.Join(downErr, err)
	}
	cs, err := in.clientset()
	if err != nil {
		return 0, errors.Join(downErr, err)
	}
	err = in.waitFor(sctx, p, 90*time.Second, "kube-apiserver /readyz after the restart", func(ctx context.Context) (bool, error) {
		return cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error() == nil, nil
	})
	return time.Since(t0), errors.Join(downErr, err)
}

// closeInheritedOnExec marks every descriptor of this process above stderr
// close-on-exec. Go opens its own files that way, but a descriptor the test
// binary inherited is passed on to every child: run under `flock` (as the
// shared cluster's e2e runs are), the restarted API server kept the lock's
// descriptor, and with it the lock, for as long as it ran.
func closeInheritedOnExec() error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open descriptors: %w", err)
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
	return nil
}
