package statuspub

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// FromConnection is the status event describing c as stored.
func FromConnection(cluster string, c connection.Connection) protocol.StatusEvent {
	t := c.Status.UpdatedAt
	if t.IsZero() {
		t = time.Now().UTC()
	}
	return protocol.StatusEvent{
		Header:      protocol.NewHeader(protocol.KindStatus),
		Cluster:     cluster,
		Connection:  c.Spec.Name,
		ObjectID:    c.Spec.ID(),
		RequestID:   c.Status.LastRequestID,
		Generation:  c.Generation,
		Phase:       c.Status.Phase,
		Reason:      c.Status.Reason,
		Message:     c.Status.Message,
		Resources:   append([]connection.ResourceRef(nil), c.Status.Resources...),
		Time:        t,
		Seq:         c.Status.Seq,
		Incarnation: c.Status.Incarnation,
	}
}

// Deleted is the event for a connection whose record was removed (it is
// terminating); the request id is the delete's, so that the control plane's
// Wait can match it. Its Seq follows the record's last write: no write can
// follow a removal, so it is the last event of that record.
func Deleted(cluster string, c connection.Connection) protocol.StatusEvent {
	ev := FromConnection(cluster, c)
	ev.Phase = connection.PhaseDeleted
	ev.Reason = "Deleted"
	ev.Message = ""
	ev.Time = time.Now().UTC()
	if ev.Seq > 0 {
		ev.Seq++
	}
	if c.Deletion != nil {
		ev.RequestID = c.Deletion.RequestID
	}
	return ev
}

// Changed reports whether an informer update from old to new is worth an
// event: a new phase, reason, generation or request. Status rewrites that
// only move timestamps are not.
func Changed(old, new connection.Connection) bool {
	return old.Status.Phase != new.Status.Phase ||
		old.Status.Reason != new.Status.Reason ||
		old.Generation != new.Generation ||
		old.Status.LastRequestID != new.Status.LastRequestID ||
		(old.Deletion == nil) != (new.Deletion == nil)
}

// MsgID is the Nats-Msg-Id of an event, which the status stream
// deduplicates within its window.
//
// An event that describes a record write (Seq > 0) is named by that write:
// object id, incarnation and seq. Publishing the same write twice (intake
// and statuswatch both see it, a restarted leader re-publishes every
// record) stores it once, and every new write, even one back to a phase
// and reason seen a moment ago (Succeeded, Pending/Drift, Succeeded), has
// a new id and is never dropped.
//
// An event no record describes (intake's rejections and Retrying
// reports, Seq 0) is named by its request and content, the message hashed:
// the same report twice is one event, a second, different error is another.
func MsgID(ev protocol.StatusEvent) string {
	if ev.Seq > 0 {
		return ev.ObjectID + "/" + ev.Incarnation + "/" + strconv.FormatInt(ev.Seq, 10)
	}
	h := sha256.Sum256([]byte(string(ev.Phase) + "\x00" + ev.Reason + "\x00" + ev.Message))
	return ev.ObjectID + "/" + strconv.FormatInt(ev.Generation, 10) + "/" + string(ev.Phase) + "/" + ev.Reason + "/" + ev.RequestID +
		"/" + hex.EncodeToString(h[:8])
}
