package jobrun

import (
	"sync"

	"k8s.io/client-go/util/workqueue"
)

// level is a queued connection's priority: due work (connection.Due: new,
// changed, deletions, retries whose backoff ended) before the re-render of
// settled connections RenderAll asks for.
type level int

const (
	levelDue level = iota
	levelRerender
)

// levels is the run's workqueue storage (workqueue.Queue): two FIFOs, due
// work popped first, so a request that arrives while a long re-render runs
// waits for one worker to come free, not for the re-render to end. The
// workqueue around it keeps its guarantees: a connection is queued once
// and never processed by two workers at once.
//
// It also counts what is queued and in flight under one lock, which the
// workqueue cannot tell: the run ends only when both are zero (idle).
// Push, Touch and Pop are called under the workqueue's lock; levels' own
// lock nests inside it and is never held while calling the workqueue.
type levels struct {
	mu sync.Mutex
	// want is the level the next Push or Touch of a connection files it
	// at; mark sets it before the workqueue is told (Add).
	want  map[string]level
	fifo  [2][]entry
	where map[string]entry // queued connections and their live entry
	seq   uint64
	// inflight counts connections popped and not yet finished (done).
	inflight int
	// pushes counts every Push, so the run can tell "work arrived" from
	// "still idle" across a wait.
	pushes uint64
	// changed wakes the run when work is pushed or the last in flight ends.
	changed chan struct{}
}

var _ workqueue.Queue[string] = (*levels)(nil)

// entry is one filing of a connection; an entry no longer in where (the
// connection moved to the due level) is skipped when popped.
type entry struct {
	id  string
	seq uint64
	lvl level
}

func newLevels() *levels {
	return &levels{want: map[string]level{}, where: map[string]entry{}, changed: make(chan struct{}, 1)}
}

// mark says at which level id is to be queued; due wins over a re-render
// already asked for. The caller then adds id to the workqueue.
func (l *levels) mark(id string, lvl level) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.want[id]; !ok || lvl < cur {
		l.want[id] = lvl
	}
}

// Push files id at the level it was marked with (due when unmarked: a
// retry the run scheduled for itself).
func (l *levels) Push(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.file(id, l.want[id])
	l.pushes++
	l.wake()
}

// Touch: id, already queued, was added again; if it is now due, it moves
// up to the due level.
func (l *levels) Touch(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.where[id]; ok && l.want[id] < e.lvl {
		l.file(id, l.want[id])
	}
}

func (l *levels) file(id string, lvl level) {
	l.seq++
	e := entry{id: id, seq: l.seq, lvl: lvl}
	l.where[id] = e
	l.fifo[lvl] = append(l.fifo[lvl], e)
}

// Len is how many connections are queued.
func (l *levels) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.where)
}

// Pop takes the oldest due connection, else the oldest re-render; the
// workqueue calls it only when Len is not zero. The connection counts as
// in flight until done.
func (l *levels) Pop() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for lvl := range l.fifo {
		for len(l.fifo[lvl]) > 0 {
			e := l.fifo[lvl][0]
			l.fifo[lvl][0] = entry{}
			l.fifo[lvl] = l.fifo[lvl][1:]
			if l.where[e.id] != e {
				continue // moved up to the due level
			}
			delete(l.where, e.id)
			delete(l.want, e.id)
			l.inflight++
			return e.id
		}
	}
	panic("jobrun: Pop from an empty queue") // the workqueue checks Len first
}

// done ends one connection's turn (after the workqueue's Done, which may
// have queued it again).
func (l *levels) done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	if l.inflight == 0 {
		l.wake()
	}
}

// idle: nothing queued, in flight or marked; pushes tells whether work
// arrived since an earlier look. A marked connection is on its way into
// the queue (or queued again once its turn in flight is done): it is
// popped, unmarking it, before the run can be idle.
func (l *levels) idle() (idle bool, pushes uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.where) == 0 && l.inflight == 0 && len(l.want) == 0, l.pushes
}

func (l *levels) wake() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}
