package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// node is one server process, restartable with the same arguments.
type node struct {
	name       string
	port       int
	routePort  int
	store      string
	bin        string
	args       []string
	logPath    string
	mu         sync.Mutex
	cmd        *exec.Cmd
	exited     chan struct{}
	startCount int
	ready      time.Duration // since the last start, when scctl server said it is ready; 0: not yet
}

// readyLine is the first line `scctl server` prints once its provisioning
// (streams and every cluster's consumer) is done.
const readyLine = "listening on"

// readyAfter is how long the node's last start took to report ready (0:
// it has not).
func (n *node) readyAfter() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ready
}

func (n *node) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

func (n *node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.bin, n.args...)
	// scctl server prints its instructions once provisioning is done: the
	// bench notes when each node said so (readyLine), and logs the rest.
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, logf
	started := time.Now()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, readyLine) {
				n.mu.Lock()
				if n.ready == 0 {
					n.ready = time.Since(started)
				}
				n.mu.Unlock()
			}
			fmt.Fprintln(logf, line)
		}
		_, _ = io.Copy(io.Discard, pr)
		logf.Close()
	}()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = pw.Close()
		close(exited)
	}()
	n.cmd, n.exited, n.ready = cmd, exited, 0
	n.startCount++
	return nil
}

func (n *node) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// signal sends sig and waits for the process to end (SIGTERM: up to 20s,
// then SIGKILL).
func (n *node) signal(sig syscall.Signal) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}
