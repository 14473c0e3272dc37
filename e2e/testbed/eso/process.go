package eso

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// BaseArgs are given to every run: ESO's metrics listener would take the
// host's port 8080, which is not ESO's to take on a shared machine. It is
// the only flag the benchmark sets besides those it measures.
var BaseArgs = []string{"--metrics-addr=0"}

// Process is ESO's controller running outside the cluster.
type Process struct {
	// Started is when the process was started: the benchmark times from it.
	Started time.Time
	// Log is the file holding its output.
	Log string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // set before exited is closed
}

// Start runs binary against the cluster of kubeconfig with BaseArgs and
// args, its output appended to logPath.
func Start(binary, kubeconfig, logPath string, args ...string) (*Process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("eso: %w", err)
	}
	cmd := exec.Command(binary, append(append([]string(nil), BaseArgs...), args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = log, log
	// The benchmark's process dying must not leave ESO writing Secrets.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &Process{Log: logPath, cmd: cmd, exited: make(chan struct{})}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("eso: start %s: %w", binary, err)
	}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process's id, for /proc.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ErrExited: ESO ended on its own.
var ErrExited = errors.New("eso: process exited")

// Err tells why the process ended; nil while it runs.
func (p *Process) Err() error {
	select {
	case <-p.exited:
		if p.err == nil {
			return fmt.Errorf("%w with status 0", ErrExited)
		}
		return fmt.Errorf("%w: %w", ErrExited, p.err)
	default:
		return nil
	}
}

// Stop ends the process: SIGTERM, then SIGKILL after grace. It is safe to
// call more than once and after the process ended.
func (p *Process) Stop(grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
