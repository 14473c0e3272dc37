package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// procSpec describes a component process to start.
type procSpec struct {
	Name    string   // component name: PID file and log file are named after it
	Path    string   // absolute path of the binary: argv[0], matched at teardown
	Args    []string // arguments after argv[0]
	Env     []string // extra environment
	Dir     string   // working directory
	Log     string   // stdout+stderr go here (appended)
	PidFile string
	// Detach makes the process outlive the caller (new session, no parent
	// death signal): used by the CLI, whose cluster must survive `make`.
	// Without it the process is tied to the caller's life so that a killed
	// `go test` binary never leaves a private api server behind.
	Detach bool
}

// proc is a started component.
type proc struct {
	rec  procRecord
	done chan struct{} // closed when the process exited
	err  error         // exit status, valid after done
}

// exited reports whether the process has exited, without blocking.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func startProc(spec procSpec) (*proc, error) {
	logf, err := os.OpenFile(spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	defer logf.Close() // the child has its own copy of the descriptor
	fmt.Fprintf(logf, "\n==== %s testbed: starting %s %q\n", time.Now().Format(time.RFC3339), spec.Path, spec.Args)

	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if spec.Detach {
		// A detached process outlives us: it must not keep descriptors we
		// inherited, such as a flock(1) lock held around `make cluster`.
		if err := closeInheritedOnExec(); err != nil {
			return nil, fmt.Errorf("start %s: %w", spec.Name, err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		err = cmd.Start()
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = startOnLockedThread(cmd)
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p := &proc{done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }() // reaps the child while we live

	st, err := hostProc.stat(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("start %s: read /proc: %w", spec.Name, err)
	}
	p.rec = procRecord{Name: spec.Name, PID: cmd.Process.Pid, StartTime: st.StartTime, Cmdline: cmd.Args}
	if spec.PidFile != "" {
		if err := writePidFile(spec.PidFile, p.rec); err != nil {
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("start %s: %w", spec.Name, err)
		}
	}
	return p, nil
}

// Pdeathsig fires when the OS *thread* that forked the child exits, not the
// process. Go may retire threads, so children are forked from one goroutine
// locked to a thread that lives as long as the process.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd *exec.Cmd
	res chan error
}

func startOnLockedThread(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must not exit
			for r := range spawner.reqs {
				r.res <- r.cmd.Start()
			}
		}()
	})
	res := make(chan error)
	spawner.reqs <- spawnReq{cmd: cmd, res: res}
	return <-res
}

// errReplaced is returned when a PID file points at a process that is not the
// recorded one any more; such a PID is never signalled.
var errReplaced = errors.New("pid belongs to another process now")

// stopRecorded stops the recorded process: SIGTERM, then SIGKILL after grace.
// It re-verifies the record before every signal.
func stopRecorded(ctx context.Context, fs procFS, rec procRecord, grace time.Duration) error {
	switch fs.check(rec) {
	case procGone:
		return nil
	case procReplaced:
		return fmt.Errorf("%s (pid %d): %w", rec.Name, rec.PID, errReplaced)
	}
	return terminate(ctx, fs, rec, grace)
}

func terminate(ctx context.Context, fs procFS, rec procRecord, grace time.Duration) error {
	if err := syscall.Kill(rec.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s: %w", rec.Name, err)
	}
	if waitGone(ctx, fs, rec, grace) {
		return nil
	}
	if fs.check(rec) == procRunning {
		if err := syscall.Kill(rec.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill %s: %w", rec.Name, err)
		}
	}
	if !waitGone(ctx, fs, rec, 10*time.Second) {
		return fmt.Errorf("%s (pid %d) survived SIGKILL", rec.Name, rec.PID)
	}
	return nil
}

// waitGone polls the process table until rec is gone; there is no portable
// way to wait for a process that is not our child.
func waitGone(ctx context.Context, fs procFS, rec procRecord, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if fs.check(rec) != procRunning {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
