package intake

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/kube/controller"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Reasons of the status events the intake publishes.
const (
	ReasonAccepted           = "Accepted"
	ReasonInvalidRequest     = "InvalidRequest"
	ReasonUnsupportedVersion = "UnsupportedVersion"
	ReasonTooLarge           = "TooLarge"
	ReasonCannotUnseal       = "CannotUnseal"
	ReasonInvalidConnection  = "InvalidConnection"
	ReasonNotFound           = "NotFound"
	ReasonRejected           = "Rejected"
	// ReasonNamespaceDenied: the connection's scope is a namespace the
	// agent's policy refuses (pkg/core/namespaces); nothing was stored.
	ReasonNamespaceDenied = namespaces.ReasonDenied
	// ReasonRecordCorrupt: the stored record cannot be decoded (edited by
	// hand); delete it or restore it, then send the request again.
	ReasonRecordCorrupt = "RecordCorrupt"
	// ReasonForbidden: the API server refused the write (RBAC, a
	// ResourceQuota, an admission webhook); its message says which.
	ReasonForbidden = "Forbidden"
	// ReasonInvalid: the API server found the object invalid.
	ReasonInvalid = "Invalid"
	// ReasonExpired: still failing transiently past MaxAge, or delivered
	// more than MaxDeliveries times; the message carries the last error.
	ReasonExpired = "Expired"
	// ReasonRetrying (phase Pending): a transient failure; the message
	// carries the error and the request is retried with backoff.
	ReasonRetrying = "Retrying"
	// ReasonDeleted (phase Deleted): a redelivered delete found the
	// connection already gone.
	ReasonDeleted = "Deleted"
)

// Outcomes in the per-request log line.
const (
	outcomeAccepted    = "accepted"
	outcomeDuplicate   = "duplicate"
	outcomeRejected    = "rejected"
	outcomeRetry       = "retry"
	outcomeInterrupted = "interrupted"
	outcomeRedelivered = "redelivered"
)

// finishTimeout bounds the ack and status publish after Apply, which run
// even when ctx has just been cancelled: the store has the change, so
// telling the server and the control plane is worth finishing.
const finishTimeout = 5 * time.Second

var (
	// errNothingStored: the store reported a duplicate without a record.
	errNothingStored = errors.New("store reported a duplicate but holds no record of it")
	// errExpired: the request ran out of time or deliveries.
	errExpired = errors.New("request expired")
)

// rejection is a request retrying cannot fix.
type rejection struct {
	reason string
	err    error
}

// verdict is what became of one attempt at a held request.
type verdict int

const (
	acked       verdict = iota // applied, a duplicate, or already deleted
	terminated                 // ended with a Failed status
	retry                      // transient failure: still held, retried with backoff
	interrupted                // shutdown mid-apply: still held, handed back
)

// sync applies the head request of one connection; the worker queue calls
// it with at most one worker per key. A transient failure returns an error
// so that the queue retries the key with its per-key backoff, which keeps
// the failing request at the head and the requests behind it waiting.
func (in *Intake) sync(ctx context.Context, d *dispatcher, key string) error {
	if ctx.Err() != nil {
		return nil // shutting down: Run hands everything held back
	}
	h := d.head(key)
	if h == nil {
		return nil
	}
	switch in.handle(ctx, d, h) {
	case acked:
		d.finish(h, false)
	case terminated:
		d.finish(h, true)
	case retry:
		return fmt.Errorf("%w: request at stream sequence %d of %s failed transiently", controller.ErrRequeue, h.seq, key)
	case interrupted:
	}
	return nil
}

// handle makes one attempt at h. It never returns an error: every outcome
// is an ack, a termination or a retry, and a log line.
func (in *Intake) handle(ctx context.Context, d *dispatcher, h *held) verdict {
	start := time.Now()
	msg, delivered := d.current(h)
	h.attempts++
	req, creds, rej := in.admit(msg.Data())
	log := in.log.With().Str("requestId", req.ID).Str("op", string(req.Op)).
		Str("connection", req.Connection.Name).Str("objectId", objectID(req)).Uint64("seq", h.seq).
		Uint64("delivered", delivered).Int("attempt", h.attempts).Logger()
	if rej == nil {
		rej = in.expired(h, delivered)
	}
	if rej != nil {
		in.reject(msg, req, rej, creds, log, start)
		return terminated
	}
	ch := connection.Change{
		RequestID:       req.ID,
		Spec:            req.Connection,
		Credentials:     creds,
		Delete:          req.Op == protocol.OpDelete,
		DeleteResources: req.DeleteResources,
	}
	actx, cancel := context.WithTimeout(ctx, in.o.AttemptTimeout)
	conn, applied, err := in.o.Store.Apply(actx, ch)
	cancel()
	if err == nil && !applied && !ch.Delete && conn.Generation == 0 {
		// A duplicate create or update always has a stored generation; a
		// store claiming otherwise did not store it, and acking would lose
		// the request.
		err = errNothingStored
	}
	if err != nil {
		return in.failed(ctx, h, msg, req, creds, delivered, err, log, start)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err := msg.DoubleAck(fctx); err != nil {
		// The store has the change; a redelivery is recognised by its id.
		log.Warn().Err(err).Msg("ack not confirmed; a redelivery will be treated as a duplicate")
	}
	if conn.Spec.Name == "" {
		// A store that has forgotten the connection (a duplicate delete)
		// returns none; report on the name the request used.
		conn.Spec.Name = req.Connection.Name
	}
	ev := statuspub.FromConnection(in.o.Cluster, conn)
	outcome := outcomeDuplicate
	if applied {
		outcome = outcomeAccepted
		ev.RequestID, ev.Phase, ev.Reason, ev.Message = req.ID, connection.PhasePending, ReasonAccepted, acceptedMessage(req)
		ev.Time = time.Now().UTC()
		// This event says something other than the record's write (an
		// unchanged re-send leaves the record Succeeded): with the write's
		// seq it would share statuswatch's Nats-Msg-Id and one of the two
		// would be dropped as a duplicate. Seq 0 gives it its own id.
		ev.Seq = 0
	}
	if ev.Phase == "" {
		log.Debug().Msg("duplicate of a request whose connection has no status to re-publish")
	} else if err := in.o.Status.Publish(fctx, ev); err != nil {
		log.Warn().Err(err).Msg("status event not published")
	}
	done(log.Info(), outcome, start).Int64("generation", conn.Generation).Str("phase", string(ev.Phase)).Msg("request handled")
	return acked
}

// failed decides what a store error means for the request.
func (in *Intake) failed(ctx context.Context, h *held, msg jetstream.Msg, req protocol.Request, creds connection.Credentials,
	delivered uint64, err error, log zerolog.Logger, start time.Time) verdict {
	isDelete := req.Op == protocol.OpDelete
	switch {
	case isDelete && in.o.IsNotFound(err) && (delivered > 1 || h.attempts > 1):
		// An earlier delivery or attempt may have stored the delete and
		// sc-job removed the connection since (the ack was lost, or the
		// agent stopped before sending it): what was asked is done.
		in.alreadyDeleted(ctx, msg, req, log, start)
		return acked
	case isDelete && in.o.IsNotFound(err):
		in.reject(msg, req, &rejection{ReasonNotFound, err}, creds, log, start)
		return terminated
	}
	if reason := in.permanentReason(err); reason != "" {
		in.reject(msg, req, &rejection{reason, err}, creds, log, start)
		return terminated
	}
	if ctx.Err() != nil {
		done(log.Info(), outcomeInterrupted, start).Err(redact(err, creds)).Msg("request interrupted by shutdown, to be handed back")
		return interrupted
	}
	text := redact(err, creds).Error()
	done(log.Warn(), outcomeRetry, start).Err(redact(err, creds)).Msg("request failed transiently, will retry")
	if text != h.lastErr {
		// Once per distinct error, not per attempt: the control plane
		// learns why the request waits without a stream of copies.
		h.lastErr = text
		in.publish(log, in.event(req, connection.PhasePending, ReasonRetrying, "retrying with backoff: "+text))
	}
	return retry
}

// expired ends a request that was delivered too often, or that has failed
// transiently in this agent and is now older than MaxAge; its message
// carries the last transient error, if any. Age alone never ends a request
// not yet tried: a request is desired state, and an agent that was down
// longer than MaxAge (a cluster stopped overnight, a long upgrade) applies
// its queue late rather than dropping it.
func (in *Intake) expired(h *held, delivered uint64) *rejection {
	var err error
	// attempts counts the one about to be made: > 1 means an earlier one
	// in this agent failed transiently (the others end the request).
	failedBefore := h.lastErr != "" || h.attempts > 1
	switch age := in.now().Sub(h.stored); {
	case delivered > uint64(in.o.MaxDeliveries):
		err = fmt.Errorf("%w: delivered %d times (limit %d), an agent stopped while handling it each time", errExpired, delivered, in.o.MaxDeliveries)
	case failedBefore && !h.stored.IsZero() && age > in.o.MaxAge:
		err = fmt.Errorf("%w: still failing %s after its sending (limit %s); send it again", errExpired, age.Round(time.Second), in.o.MaxAge)
	default:
		return nil
	}
	if h.lastErr != "" {
		err = fmt.Errorf("%w; last error: %s", err, h.lastErr)
	}
	return &rejection{ReasonExpired, err}
}

// alreadyDeleted acks a redelivered delete of a connection that is gone
// and reports Deleted for it, which is what its first delivery ended in.
func (in *Intake) alreadyDeleted(ctx context.Context, msg jetstream.Msg, req protocol.Request, log zerolog.Logger, start time.Time) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err := msg.DoubleAck(fctx); err != nil {
		log.Warn().Err(err).Msg("ack not confirmed; a redelivery will be treated the same way")
	}
	in.publish(log, in.event(req, connection.PhaseDeleted, ReasonDeleted, "connection already deleted"))
	done(log.Info(), outcomeDuplicate, start).Str("phase", string(connection.PhaseDeleted)).Msg("redelivered delete of a connection already gone")
}

// event is a status event about req that no stored connection describes
// (generation 0, so that it never ends the wait of another request).
func (in *Intake) event(req protocol.Request, phase connection.Phase, reason, message string) protocol.StatusEvent {
	return protocol.StatusEvent{
		Header:     protocol.NewHeader(protocol.KindStatus),
		Cluster:    in.o.Cluster,
		Connection: req.Connection.Name,
		ObjectID:   connection.ObjectID(req.Connection.Name),
		RequestID:  req.ID,
		Phase:      phase,
		Reason:     reason,
		Message:    message,
		Time:       time.Now().UTC(),
	}
}

// publish sends ev with its own deadline: it runs after the request is
// answered, even when the agent is stopping.
func (in *Intake) publish(log zerolog.Logger, ev protocol.StatusEvent) {
	if ev.Connection == "" || connection.ValidateName(ev.Connection) != nil {
		return // no subject to report on; the log line is all there is
	}
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	if err := in.o.Status.Publish(ctx, ev); err != nil {
		log.Warn().Err(err).Str("phase", string(ev.Phase)).Str("reason", ev.Reason).Msg("status event not published")
	}
}

// reject terminates the request (never redelivered) and reports Failed.
func (in *Intake) reject(msg jetstream.Msg, req protocol.Request, rej *rejection, creds connection.Credentials, log zerolog.Logger, start time.Time) {
	err := redact(rej.err, creds)
	if termErr := msg.TermWithReason(rej.reason); termErr != nil {
		log.Warn().Err(termErr).Msg("terminate failed; the request will be rejected again on redelivery")
	}
	done(log.Warn(), outcomeRejected, start).Str("reason", rej.reason).Err(err).Msg("request rejected")
	in.publish(log, in.event(req, connection.PhaseFailed, rej.reason, err.Error()))
}

func acceptedMessage(req protocol.Request) string {
	if req.Op == protocol.OpDelete {
		return "delete accepted; waiting for sc-job"
	}
	return req.Connection.Name + " " + string(req.Op) + " accepted; waiting for sc-job"
}

func objectID(req protocol.Request) string {
	if req.Connection.Name == "" {
		return ""
	}
	return connection.ObjectID(req.Connection.Name)
}

func done(ev *zerolog.Event, outcome string, start time.Time) *zerolog.Event {
	return ev.Str("outcome", outcome).Dur("duration", time.Since(start))
}
