package statuspub

import (
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
		Header:     protocol.NewHeader(protocol.KindStatus),
		Cluster:    cluster,
		Connection: c.Spec.Name,
		ObjectID:   c.Spec.ID(),
		RequestID:  c.Status.LastRequestID,
		Generation: c.Generation,
		Phase:      c.Status.Phase,
		Reason:     c.Status.Reason,
		Message:    c.Status.Message,
		Resources:  append([]connection.ResourceRef(nil), c.Status.Resources...),
		Time:       t,
	}
}

// Deleted is the event for a connection whose records are gone; the request
// id is the delete's, so that the control plane's Wait can match it.
func Deleted(cluster string, c connection.Connection) protocol.StatusEvent {
	ev := FromConnection(cluster, c)
	ev.Phase = connection.PhaseDeleted
	ev.Reason = "Deleted"
	ev.Message = ""
	ev.Time = time.Now().UTC()
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

// MsgID is the Nats-Msg-Id of an event: the same phase and reason of the
// same generation for the same request is one event, however many times it
// is published within the stream's duplicate window. The reason is part of
// it so that a run failing again for a different reason is still reported.
func MsgID(ev protocol.StatusEvent) string {
	return ev.ObjectID + "/" + strconv.FormatInt(ev.Generation, 10) + "/" + string(ev.Phase) + "/" + ev.Reason + "/" + ev.RequestID
}
