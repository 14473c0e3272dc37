// Package statuswatch turns changes of connection records into status
// events for the control plane: a phase, reason, generation or request id
// change publishes the record's status, a removed record publishes Deleted,
// and every record's status is published once when the watch starts, so a
// control plane that missed events while no agent led converges. Events
// are published from recordcache's summary of each record version; the
// only write is the release of a removed record's finalizer (Release).
package statuswatch
