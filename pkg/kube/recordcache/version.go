package recordcache

import (
	"time"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// Version is what the agent's controllers decide on from one version of a
// record: its phase, reason, generation and last request, when sc-job has
// work for it, whether it is parked on its target namespace, and the
// objects it claims. The rest of the spec, the message and the request
// history stay in the informer's ConfigMap.
type Version struct {
	ResourceVersion string
	// Err is why this version could not be decoded (record.ErrUnsupportedVersion
	// for a newer release's record, record.ErrCorrupt otherwise); the other
	// fields are then zero.
	Err error

	Name          string
	Scope         string
	Phase         connection.Phase
	Reason        string
	Generation    int64
	LastRequestID string
	// RetryAfter is the status's retryAfter, zero if it has none.
	RetryAfter time.Time
	// Deleting: the connection's deletion was requested (Connection.Deletion).
	Deleting bool

	// HasWork and DueAt are connection.DueAt of this version: sc-job has
	// work for it from DueAt on (the zero time: now).
	HasWork bool
	DueAt   time.Time

	// Resources and Owned are the status's: the objects sc-job rendered for
	// this version and the UIDs it recorded for them (drift's claims).
	Resources []connection.ResourceRef
	Owned     []connection.OwnedObject
}

func newVersion(rv string, c connection.Connection, err error) Version {
	if err != nil {
		return Version{ResourceVersion: rv, Err: err}
	}
	v := Version{ResourceVersion: rv, Name: c.Spec.Name, Scope: c.Spec.Scope, Phase: c.Status.Phase, Reason: c.Status.Reason,
		Generation: c.Generation, LastRequestID: c.Status.LastRequestID, Deleting: c.Deletion != nil,
		// Clipped: a summary is held for every record, and the decoder's
		// spare capacity would be too.
		Resources: compact(c.Status.Resources), Owned: compact(c.Status.Owned)}
	if c.Status.RetryAfter != nil {
		v.RetryAfter = *c.Status.RetryAfter
	}
	v.DueAt, v.HasWork = connection.DueAt(c)
	return v
}

// Parked: sc-job left the connection waiting for its target namespace
// (Scope) to exist.
func (v Version) Parked() bool {
	return v.Err == nil && v.Reason == connection.ReasonNamespaceNotFound && !v.RetryAfter.IsZero()
}

// Connection is the connection as far as v knows it, for the functions that
// decide on those fields alone (statuspub.Changed, inspect.NotOurs); it
// holds no spec beyond name and scope, no message nor history. Its
// Resources and Owned are v's: read them, do not change them.
func (v Version) Connection() connection.Connection {
	var c connection.Connection
	c.Spec.Name, c.Spec.Scope = v.Name, v.Scope
	c.Generation = v.Generation
	c.Status.Phase, c.Status.Reason, c.Status.LastRequestID = v.Phase, v.Reason, v.LastRequestID
	if !v.RetryAfter.IsZero() {
		at := v.RetryAfter
		c.Status.RetryAfter = &at
	}
	if v.Deleting {
		c.Deletion = &connection.Deletion{}
	}
	c.Status.Resources, c.Status.Owned = v.Resources, v.Owned
	return c
}

// compact is s in an array of its own length, or nil when empty.
func compact[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return append(make(S, 0, len(s)), s...)
}
