package jobrun

import (
	"sync"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// records is the run's view of every connection record: the latest
// version its watch delivered, decoded once. A worker decides from it
// whether a connection it takes still has work, and a delete asks it
// which other connections still render a ServiceAccount.
type records struct {
	mu    sync.RWMutex
	conns map[string]connection.Connection
	// corrupt are records whose latest version does not decode.
	corrupt map[string]bool
	// newer are records a newer release wrote, by resourceVersion logged.
	newer map[string]string
}

func newRecords() *records {
	return &records{conns: map[string]connection.Connection{}, corrupt: map[string]bool{}, newer: map[string]string{}}
}

func (rs *records) get(id string) (connection.Connection, bool) {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	c, ok := rs.conns[id]
	return c, ok
}

func (rs *records) set(id string, c connection.Connection) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.conns[id] = c
	delete(rs.corrupt, id)
	delete(rs.newer, id)
}

// forget drops a removed (or terminating) record.
func (rs *records) forget(id string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.conns, id)
	delete(rs.corrupt, id)
	delete(rs.newer, id)
}

// markCorrupt records that id's latest version does not decode; it says
// whether that is news (to log once).
func (rs *records) markCorrupt(id string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.conns, id)
	delete(rs.newer, id)
	news := !rs.corrupt[id]
	rs.corrupt[id] = true
	return news
}

// markNewer records that version rv of id was written by a newer release;
// it says whether that version is news (to log once).
func (rs *records) markNewer(id, rv string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.conns, id)
	delete(rs.corrupt, id)
	news := rs.newer[id] != rv
	rs.newer[id] = rv
	return news
}

func (rs *records) corruptCount() int {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	return len(rs.corrupt)
}

// each calls f with every connection until f returns false.
func (rs *records) each(f func(connection.Connection) bool) {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	for _, c := range rs.conns {
		if !f(c) {
			return
		}
	}
}
