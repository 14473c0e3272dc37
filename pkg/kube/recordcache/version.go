package recordcache

import (
	"slices"
	"time"
	"unique"

	corev1 "k8s.io/api/core/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// Version is what the agent's controllers decide on from one version of a
// record: its phase, reason, generation and last request, when sc-job has
// work for it, whether it is parked on its target namespace, the objects
// it claims, and everything else a status event says of it. The rest of
// the spec, the credentials version and the request history are not
// summarised: no controller of the agent reads them.
type Version struct {
	ResourceVersion string
	// Err is why this version could not be decoded (record.ErrUnsupportedVersion
	// for a newer release's record, record.ErrCorrupt otherwise); the other
	// fields are then zero but Name, which the record's annotation gives.
	Err error

	Name          string
	Scope         string
	Phase         connection.Phase
	Reason        string
	Generation    int64
	LastRequestID string
	// RetryAfter is the status's retryAfter, zero if it has none.
	RetryAfter time.Time
	// Deleting: the connection's deletion was requested (Connection.Deletion);
	// DeletionRequestID is that request's id.
	Deleting          bool
	DeletionRequestID string

	// Message, UpdatedAt, Seq and Incarnation are the status's: with the
	// fields above, all that statuspub.FromConnection and statuspub.Deleted
	// publish, so statuswatch publishes from the summary.
	Message     string
	UpdatedAt   time.Time
	Seq         int64
	Incarnation string

	// HasWork and DueAt are connection.DueAt of this version: sc-job has
	// work for it from DueAt on (the zero time: now).
	HasWork bool
	DueAt   time.Time

	// Resources and Owned are the status's: the objects sc-job rendered for
	// this version and the UIDs it recorded for them (drift's claims).
	Resources []connection.ResourceRef
	Owned     []connection.OwnedObject
}

// newVersion summarises c, decoded from cm. A summary is held for every
// record, so it holds as little memory of its own as it can: strings that
// repeat across records (scope, phase, reason, message, kinds, namespaces)
// are interned, the name is cm's annotation when it says the same, an owned
// object's ref shares its resource's strings, and no slice keeps the
// decoder's spare capacity.
func newVersion(cm *corev1.ConfigMap, c connection.Connection, err error) Version {
	if err != nil {
		// The name the record's annotation gives, for the reports that
		// name what could not be decoded.
		return Version{ResourceVersion: cm.ResourceVersion, Err: err, Name: cm.Annotations[connection.AnnotationConnectionName]}
	}
	v := Version{ResourceVersion: cm.ResourceVersion, Name: c.Spec.Name, Scope: intern(c.Spec.Scope),
		Phase: connection.Phase(intern(string(c.Status.Phase))), Reason: intern(c.Status.Reason),
		Generation: c.Generation, LastRequestID: c.Status.LastRequestID, Deleting: c.Deletion != nil,
		Message: intern(c.Status.Message), UpdatedAt: c.Status.UpdatedAt, Seq: c.Status.Seq, Incarnation: c.Status.Incarnation}
	if c.Deletion != nil {
		v.DeletionRequestID = c.Deletion.RequestID
	}
	if name := cm.Annotations[connection.AnnotationConnectionName]; name == v.Name {
		v.Name = name
	}
	if len(c.Status.Resources) > 0 {
		v.Resources = make([]connection.ResourceRef, len(c.Status.Resources))
		for i, r := range c.Status.Resources {
			v.Resources[i] = connection.ResourceRef{Kind: intern(r.Kind), Namespace: intern(r.Namespace), Name: r.Name}
		}
	}
	if len(c.Status.Owned) > 0 {
		v.Owned = make([]connection.OwnedObject, len(c.Status.Owned))
		for i, o := range c.Status.Owned {
			ref := connection.ResourceRef{Kind: intern(o.Kind), Namespace: intern(o.Namespace), Name: o.Name}
			if j := slices.Index(v.Resources, ref); j >= 0 {
				ref = v.Resources[j]
			}
			v.Owned[i] = connection.OwnedObject{ResourceRef: ref, UID: o.UID}
		}
	}
	if c.Status.RetryAfter != nil {
		v.RetryAfter = *c.Status.RetryAfter
	}
	v.DueAt, v.HasWork = connection.DueAt(c)
	return v
}

// intern is s held once for the process.
func intern(s string) string { return unique.Make(s).Value() }

// Parked: sc-job left the connection waiting for its target namespace
// (Scope) to exist.
func (v Version) Parked() bool {
	return v.Err == nil && v.Reason == connection.ReasonNamespaceNotFound && !v.RetryAfter.IsZero()
}

// Connection is the connection as far as v knows it, for the functions that
// decide on those fields alone (statuspub.Changed, inspect.NotOurs) and
// for the status events statuswatch publishes (statuspub.FromConnection,
// statuspub.Deleted); it holds no spec beyond name and scope, no
// credentials version nor request history. Its Resources and Owned are
// v's: read them, do not change them.
func (v Version) Connection() connection.Connection {
	var c connection.Connection
	c.Spec.Name, c.Spec.Scope = v.Name, v.Scope
	c.Generation = v.Generation
	c.Status.Phase, c.Status.Reason, c.Status.LastRequestID = v.Phase, v.Reason, v.LastRequestID
	c.Status.Message, c.Status.UpdatedAt, c.Status.Seq, c.Status.Incarnation = v.Message, v.UpdatedAt, v.Seq, v.Incarnation
	if !v.RetryAfter.IsZero() {
		at := v.RetryAfter
		c.Status.RetryAfter = &at
	}
	if v.Deleting {
		c.Deletion = &connection.Deletion{RequestID: v.DeletionRequestID}
	}
	c.Status.Resources, c.Status.Owned = v.Resources, v.Owned
	return c
}
