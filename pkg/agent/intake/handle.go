package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/agent/statuspub"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
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
)

// Outcomes in the per-request log line.
const (
	outcomeAccepted    = "accepted"
	outcomeDuplicate   = "duplicate"
	outcomeRejected    = "rejected"
	outcomeRetry       = "retry"
	outcomeInterrupted = "interrupted"
)

// finishTimeout bounds the ack and status publish after Apply, which run
// even when ctx has just been cancelled: the store has the change, so
// telling the server and the control plane is worth finishing.
const finishTimeout = 5 * time.Second

// errNothingStored: the store reported a duplicate without a record.
var errNothingStored = errors.New("store reported a duplicate but holds no record of it")

// rejection is a request retrying cannot fix.
type rejection struct {
	reason string
	err    error
}

// handle processes one message. It never returns an error: every outcome
// is an ack, a NAK or a termination, and a log line.
func (in *Intake) handle(ctx context.Context, msg jetstream.Msg, every time.Duration) {
	start := time.Now()
	delivered := uint64(1)
	if md, err := msg.Metadata(); err == nil {
		delivered = md.NumDelivered
	}
	req, creds, rej := in.admit(msg.Data())
	log := in.log.With().Str("requestId", req.ID).Str("op", string(req.Op)).
		Str("connection", req.Connection.Name).Str("objectId", objectID(req)).Uint64("delivered", delivered).Logger()
	if rej != nil {
		in.reject(msg, req, rej, creds, log, start)
		return
	}
	ch := connection.Change{
		RequestID:       req.ID,
		Spec:            req.Connection,
		Credentials:     creds,
		Delete:          req.Op == protocol.OpDelete,
		DeleteResources: req.DeleteResources,
	}
	stop := keepAlive(msg, every)
	conn, applied, err := in.o.Store.Apply(ctx, ch)
	stop()
	if err == nil && !applied && !ch.Delete && conn.Generation == 0 {
		// A duplicate create or update always has a stored generation; a
		// store claiming otherwise did not store it, and acking would lose
		// the request.
		err = errNothingStored
	}
	if err != nil {
		switch {
		case ch.Delete && in.o.IsNotFound(err):
			in.reject(msg, req, &rejection{ReasonNotFound, err}, creds, log, start)
		case in.o.IsPermanent(err):
			in.reject(msg, req, &rejection{ReasonRejected, err}, creds, log, start)
		case ctx.Err() != nil:
			_ = msg.Nak()
			done(log.Info(), outcomeInterrupted, start).Err(redact(err, creds)).Msg("request interrupted by shutdown, returned for redelivery")
		default:
			delay := in.retryDelay(delivered)
			if nakErr := msg.NakWithDelay(delay); nakErr != nil {
				log.Warn().Err(nakErr).Msg("nak failed; the server redelivers after AckWait")
			}
			done(log.Warn(), outcomeRetry, start).Err(redact(err, creds)).Dur("retryIn", delay).Msg("request failed, will retry")
		}
		return
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
	}
	if ev.Phase == "" {
		log.Debug().Msg("duplicate of a request whose connection has no status to re-publish")
	} else if err := in.o.Status.Publish(fctx, ev); err != nil {
		log.Warn().Err(err).Msg("status event not published")
	}
	done(log.Info(), outcome, start).Int64("generation", conn.Generation).Str("phase", string(ev.Phase)).Msg("request handled")
}

// admit decodes, unseals and validates. On rejection req carries whatever
// could be salvaged (id, name) so that the Failed event reaches the waiter.
func (in *Intake) admit(data []byte) (protocol.Request, connection.Credentials, *rejection) {
	req, err := protocol.DecodeRequest(data)
	if err != nil {
		return salvage(data), nil, &rejection{decodeReason(err), err}
	}
	if req.Cluster != in.o.Cluster {
		return req, nil, &rejection{ReasonInvalidRequest,
			fmt.Errorf("%w: request for cluster %q reached the agent of %q", protocol.ErrInvalidEnvelope, req.Cluster, in.o.Cluster)}
	}
	if req.Op == protocol.OpDelete {
		return req, nil, nil
	}
	creds, err := req.Credentials.Open(in.o.Key)
	if err != nil {
		return req, nil, &rejection{ReasonCannotUnseal, err}
	}
	if err := connection.Validate(req.Connection, creds); err != nil {
		return req, creds, &rejection{ReasonInvalidConnection, err}
	}
	return req, creds, nil
}

func (in *Intake) reject(msg jetstream.Msg, req protocol.Request, rej *rejection, creds connection.Credentials, log zerolog.Logger, start time.Time) {
	err := redact(rej.err, creds)
	if termErr := msg.TermWithReason(rej.reason); termErr != nil {
		log.Warn().Err(termErr).Msg("terminate failed; the request will be rejected again on redelivery")
	}
	done(log.Warn(), outcomeRejected, start).Str("reason", rej.reason).Err(err).Msg("request rejected")
	if req.Connection.Name == "" || connection.ValidateName(req.Connection.Name) != nil {
		return // no subject to report on; the log line is all there is
	}
	ev := protocol.StatusEvent{
		Header:     protocol.NewHeader(protocol.KindStatus),
		Cluster:    in.o.Cluster,
		Connection: req.Connection.Name,
		ObjectID:   connection.ObjectID(req.Connection.Name),
		RequestID:  req.ID,
		Phase:      connection.PhaseFailed,
		Reason:     rej.reason,
		Message:    err.Error(),
		Time:       time.Now().UTC(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	if pubErr := in.o.Status.Publish(ctx, ev); pubErr != nil {
		log.Warn().Err(pubErr).Msg("failure status not published")
	}
}

func (in *Intake) retryDelay(delivered uint64) time.Duration {
	d := in.o.RetryBase
	for i := uint64(1); i < delivered && d < in.o.RetryMax; i++ {
		d *= 2
	}
	return min(d, in.o.RetryMax)
}

// salvage reads the id and name of a request that did not decode, leniently,
// so that its sender still learns why. Nothing else of it is trusted.
func salvage(data []byte) protocol.Request {
	var p struct {
		ID         string `json:"id"`
		Op         string `json:"op"`
		Connection struct {
			Name string `json:"name"`
		} `json:"connection"`
	}
	if json.Unmarshal(data, &p) != nil || len(p.ID) > 128 || len(p.Op) > 16 {
		return protocol.Request{}
	}
	return protocol.Request{ID: p.ID, Op: protocol.Op(p.Op), Connection: connection.Spec{Name: p.Connection.Name}}
}

func decodeReason(err error) string {
	switch {
	case errors.Is(err, protocol.ErrUnsupportedVersion):
		return ReasonUnsupportedVersion
	case errors.Is(err, protocol.ErrTooLarge):
		return ReasonTooLarge
	}
	return ReasonInvalidRequest
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

// keepAlive tells the server the request is still being worked on, so a
// slow Apply (API server throttling) is not redelivered to another replica
// mid-way. The returned func stops it and waits for the goroutine.
func keepAlive(msg jetstream.Msg, every time.Duration) func() {
	stop, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(stop); <-finished }
}

// redact is defence in depth: no layer should quote a credential value, but
// if one ever does, the value still never reaches a log line or an event.
func redact(err error, creds connection.Credentials) error {
	if err == nil || len(creds) == 0 {
		return err
	}
	s := err.Error()
	changed := false
	for _, v := range creds {
		if v != "" && strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, "<redacted>")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return redacted{msg: s, err: err}
}

// redacted keeps errors.Is working on the original chain while printing
// the scrubbed text.
type redacted struct {
	msg string
	err error
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }

func done(ev *zerolog.Event, outcome string, start time.Time) *zerolog.Event {
	return ev.Str("outcome", outcome).Dur("duration", time.Since(start))
}
