package query

import (
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// SnapshotOf is the Snapshot a Cache would hold of conns.
func SnapshotOf(conns []connection.Connection) (*Snapshot, error) { return snapshotOf(conns) }

// Page is the page the list query answers, and its continue token.
func (s *Snapshot) Page(namespace, token string, limit int) ([]byte, string, error) {
	return s.page(namespace, token, limit)
}

// Has tells whether the snapshot holds the record named name.
func (s *Snapshot) Has(name string) bool {
	for _, e := range s.entries {
		if e.name == name {
			return true
		}
	}
	return false
}
