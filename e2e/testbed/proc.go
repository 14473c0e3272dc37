package testbed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// procFS reads process facts from a /proc tree. Root is a parameter so that
// unit tests can fake a process table.
type procFS struct{ root string }

var hostProc = procFS{root: "/proc"}

// procStat is the part of /proc/PID/stat the test bed needs.
type procStat struct {
	State     byte   // R, S, D, Z, ...
	PPID      int    // parent
	StartTime uint64 // clock ticks since boot: with the PID, unique for the boot
}

func (p procFS) stat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

// parseStat parses /proc/PID/stat. The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("malformed stat %q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); starttime is field 22, i.e. f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("malformed stat %q", s)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed ppid in stat: %w", err)
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed starttime in stat: %w", err)
	}
	return procStat{State: f[0][0], PPID: ppid, StartTime: st}, nil
}

func (p procFS) cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil, nil // kernel thread or zombie
	}
	return strings.Split(string(b), "\x00"), nil
}

// pids lists the numeric entries of the proc tree.
func (p procFS) pids() ([]int, error) {
	ents, err := os.ReadDir(p.root)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// procRecord is the content of a PID file. Besides the PID it keeps what is
// needed to prove, later and possibly from another process, that the PID
// still belongs to the process the test bed started: the kernel start time
// (PIDs are reused, start times for a given PID are not) and the argv.
type procRecord struct {
	Name      string   `json:"name"`
	PID       int      `json:"pid"`
	StartTime uint64   `json:"startTime"`
	Cmdline   []string `json:"cmdline"`
}

// procStatus is the verdict on a procRecord.
type procStatus int

const (
	procGone     procStatus = iota // no such process, or a zombie waiting to be reaped
	procRunning                    // the very process that was recorded
	procReplaced                   // the PID now belongs to another process: never signal it
)

func (s procStatus) String() string {
	return [...]string{"gone", "running", "pid reused"}[s]
}

// check decides whether rec still describes a live process.
func (p procFS) check(rec procRecord) procStatus {
	st, err := p.stat(rec.PID)
	if err != nil {
		return procGone
	}
	if st.State == 'Z' || st.State == 'X' {
		return procGone
	}
	if st.StartTime != rec.StartTime {
		return procReplaced
	}
	cl, err := p.cmdline(rec.PID)
	if err != nil {
		return procGone
	}
	if !slices.Equal(cl, rec.Cmdline) {
		return procReplaced
	}
	return procRunning
}

func writePidFile(path string, rec procRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// Write-then-rename: a teardown racing with a start never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readPidFile(path string) (procRecord, error) {
	var rec procRecord
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("pid file %s: %w", path, err)
	}
	if rec.PID <= 1 || len(rec.Cmdline) == 0 {
		return rec, fmt.Errorf("pid file %s: invalid record (pid %d)", path, rec.PID)
	}
	return rec, nil
}

// readPidFiles returns the valid records of a pids/ directory keyed by
// component name; corrupt files are reported so that they can be deleted.
func readPidFiles(dir string) (map[string]procRecord, []string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	recs := map[string]procRecord{}
	var bad []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		rec, err := readPidFile(p)
		if err != nil {
			bad = append(bad, p)
			continue
		}
		recs[strings.TrimSuffix(e.Name(), ".json")] = rec
	}
	return recs, bad, nil
}
