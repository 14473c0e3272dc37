// Package memstore is an in-memory stand-in for pkg/kube/store, for tests
// that run the agent's intake or query service without a Kubernetes API
// server. It keeps the store's contract that those callers rely on: a
// request id is applied once, a changed spec gets a new generation and
// Pending, a delete marks the connection as being deleted, and a missing
// connection is an error wrapping record.ErrNotFound.
package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// Store holds connections and their credentials by object id.
type Store struct {
	mu      sync.Mutex
	conns   map[string]connection.Connection
	creds   map[string]connection.Credentials
	applied []string
}

// New returns an empty Store.
func New() *Store {
	return &Store{conns: map[string]connection.Connection{}, creds: map[string]connection.Credentials{}}
}

// Apply stores the desired state of ch, idempotently by request id.
func (s *Store) Apply(_ context.Context, ch connection.Change) (connection.Connection, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := ch.Spec.ID()
	c, ok := s.conns[id]
	if ok && c.Seen(ch.RequestID) {
		return c, false, nil
	}
	if ch.Delete {
		if !ok {
			return connection.Connection{}, false, fmt.Errorf("delete %s: %w", id, record.ErrNotFound)
		}
		c.Deletion = &connection.Deletion{RequestID: ch.RequestID, DeleteResources: ch.DeleteResources}
	} else {
		c.Spec, c.Deletion = ch.Spec, nil
		c.Generation++
		s.creds[id] = maps.Clone(ch.Credentials)
	}
	c.Status = connection.Status{Phase: connection.PhasePending, LastRequestID: ch.RequestID, ObservedGeneration: c.Status.ObservedGeneration}
	c.Remember(ch.RequestID)
	s.conns[id] = c
	s.applied = append(s.applied, ch.RequestID)
	return c, true, nil
}

// Get returns the connection with object id id.
func (s *Store) Get(_ context.Context, id string) (connection.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[id]
	if !ok {
		return connection.Connection{}, fmt.Errorf("connection %s: %w", id, record.ErrNotFound)
	}
	return c, nil
}

// List returns every connection, ordered by object id.
func (s *Store) List(context.Context) ([]connection.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]connection.Connection, 0, len(s.conns))
	for _, id := range slices.Sorted(maps.Keys(s.conns)) {
		out = append(out, s.conns[id])
	}
	return out, nil
}

// Update changes a stored connection in place, as sc-job does with its
// status; it reports whether the connection exists.
func (s *Store) Update(id string, mutate func(*connection.Connection)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[id]
	if ok {
		mutate(&c)
		s.conns[id] = c
	}
	return ok
}

// Remove forgets a connection and its credentials, as sc-job does once a
// deletion is applied.
func (s *Store) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, id)
	delete(s.creds, id)
}

// Credentials are the values the last applied change of id carried.
func (s *Store) Credentials(id string) connection.Credentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.creds[id])
}

// Applied lists the request ids applied, in order; duplicates are not.
func (s *Store) Applied() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied)
}
