//go:build e2e

package testbed

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeProc builds a /proc-like tree for the process-table logic.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) *fakeProc { return &fakeProc{t: t, root: t.TempDir()} }

func (f *fakeProc) fs() procFS { return procFS{root: f.root} }

// add creates /proc/PID with a stat line and cmdline; comm may contain
// spaces and parentheses like real ones.
func (f *fakeProc) add(pid, ppid int, state byte, start uint64, argv ...string) {
	d := filepath.Join(f.root, strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(d, "fd"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	comm := "(" + filepath.Base(argv[0]) + " (x) y)"
	fields := []string{strconv.Itoa(pid), comm, string(state), strconv.Itoa(ppid)}
	for i := 5; i <= 21; i++ {
		fields = append(fields, "0")
	}
	fields = append(fields, strconv.FormatUint(start, 10), "0", "0")
	if err := os.WriteFile(filepath.Join(d, "stat"), []byte(strings.Join(fields, " ")+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "cmdline"), []byte(strings.Join(argv, "\x00")+"\x00"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// openFile makes PID appear to hold target open.
func (f *fakeProc) openFile(pid int, target string) {
	if err := os.Symlink(target, filepath.Join(f.root, strconv.Itoa(pid), "fd", "3")); err != nil {
		f.t.Fatal(err)
	}
}

func TestParseStatHandlesHostileComm(t *testing.T) {
	st, err := parseStat("42 (a) b) (c) S 7 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 12345 0 0")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != 'S' || st.PPID != 7 || st.StartTime != 12345 {
		t.Fatalf("got %+v", st)
	}
	if _, err := parseStat("garbage"); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestCheckRecord(t *testing.T) {
	f := newFakeProc(t)
	argv := []string{"/bin/etcd", "--data-dir=/x"}
	f.add(100, 1, 'S', 500, argv...)
	f.add(101, 1, 'Z', 600, argv...)
	f.add(102, 1, 'S', 999, argv...)                     // same argv, later start: PID reused
	f.add(103, 1, 'S', 700, "/usr/bin/vim", "notes.txt") // same start time, other program
	cases := []struct {
		rec  procRecord
		want procStatus
	}{
		{procRecord{PID: 100, StartTime: 500, Cmdline: argv}, procRunning},
		{procRecord{PID: 101, StartTime: 600, Cmdline: argv}, procGone},
		{procRecord{PID: 102, StartTime: 500, Cmdline: argv}, procReplaced},
		{procRecord{PID: 103, StartTime: 700, Cmdline: argv}, procReplaced},
		{procRecord{PID: 104, StartTime: 800, Cmdline: argv}, procGone},
	}
	for _, c := range cases {
		if got := f.fs().check(c.rec); got != c.want {
			t.Errorf("pid %d: %v, want %v", c.rec.PID, got, c.want)
		}
	}
}

func TestCheckRealSelf(t *testing.T) {
	rec := selfRecord()
	if got := hostProc.check(rec); got != procRunning {
		t.Fatalf("own process: %v", got)
	}
	rec.StartTime++
	if got := hostProc.check(rec); got != procReplaced {
		t.Fatalf("own process with wrong start time: %v", got)
	}
}

func TestPidFilesRoundTripAndRejectCorrupt(t *testing.T) {
	dir := t.TempDir()
	rec := procRecord{Name: "etcd", PID: 1234, StartTime: 99, Cmdline: []string{"/bin/etcd", "--x"}}
	if err := writePidFile(filepath.Join(dir, "etcd.json"), rec); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"bad.json": "{not json", "init.json": `{"pid":1,"cmdline":["/sbin/init"]}`, "empty.json": `{"pid":55}`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	recs, bad, err := readPidFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs["etcd"].PID != 1234 || recs["etcd"].Cmdline[1] != "--x" {
		t.Errorf("records: %+v", recs)
	}
	if len(bad) != 3 {
		t.Errorf("corrupt files not reported: %v", bad)
	}
	if _, _, err := readPidFiles(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("missing dir: %v", err)
	}
}

func TestStopRecordedRefusesReusedPID(t *testing.T) {
	f := newFakeProc(t)
	f.add(100, 1, 'S', 1, "/usr/bin/vim")
	err := stopRecorded(t.Context(), f.fs(), procRecord{Name: "etcd", PID: 100, StartTime: 1, Cmdline: []string{"/bin/etcd"}}, 0)
	if !errors.Is(err, errReplaced) {
		t.Fatalf("got %v, want errReplaced", err)
	}
	if err := stopRecorded(t.Context(), f.fs(), procRecord{Name: "etcd", PID: 555, Cmdline: []string{"/bin/etcd"}}, 0); err != nil {
		t.Fatalf("gone process: %v", err)
	}
}
