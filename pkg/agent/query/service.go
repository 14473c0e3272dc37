package query

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// ControllerName names this component in logs.
const ControllerName = "query"

// QueueGroup spreads queries over the agent's replicas: one answers each.
const QueueGroup = "agent"

// Options wires a Service.
type Options struct {
	Cluster string
	// Cache answers list; nil: Reader does, listing on every query.
	Cache     *Cache
	Reader    Reader
	PublicKey string
	// IsNotFound recognises the Reader's "no such connection" error.
	IsNotFound func(error) bool
	// Deadline bounds each answer; default 4s, under scctl's 5s timeout so
	// that the user sees the agent's Internal error rather than a timeout.
	Deadline time.Duration
	// MaxInFlight bounds concurrent queries; beyond it queries are refused
	// at once (Internal, "busy") rather than queued past their deadline.
	MaxInFlight int
	Logger      zerolog.Logger
}

// Service is a running query responder.
type Service struct {
	o       Options
	records records
	log     zerolog.Logger
	sem     chan struct{}
}

// Serve subscribes to the cluster's query subjects and answers until ctx is
// done; it then drains, so queries already received are still answered.
func Serve(ctx context.Context, nc *nats.Conn, o Options) error {
	if err := protocol.ValidateCluster(o.Cluster); err != nil {
		return fmt.Errorf("query: %w", err)
	}
	if o.Reader == nil {
		return errors.New("query: Reader is required")
	}
	if o.IsNotFound == nil {
		o.IsNotFound = func(error) bool { return false }
	}
	if o.Deadline <= 0 {
		o.Deadline = 4 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 16
	}
	s := &Service{o: o, log: o.Logger.With().Str("controller", ControllerName).Str("cluster", o.Cluster).Logger(),
		sem: make(chan struct{}, o.MaxInFlight), records: readerRecords{o.Reader}}
	if o.Cache != nil {
		s.records = o.Cache
	}
	sub, err := nc.QueueSubscribe(protocol.QuerySubjectAll(o.Cluster), QueueGroup, func(m *nats.Msg) { s.dispatch(ctx, m) })
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", protocol.QuerySubjectAll(o.Cluster), err)
	}
	// A subscribe denied by permissions is reported asynchronously; a
	// round trip makes sure the server has processed it before we claim
	// to be serving. While disconnected the flush fails and the
	// subscription is replayed on reconnect, which is fine.
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ferr := nc.FlushWithContext(fctx)
	cancel()
	if le := nc.LastError(); ferr == nil && errors.Is(le, nats.ErrPermissionViolation) && strings.Contains(le.Error(), sub.Subject) {
		_ = sub.Unsubscribe()
		return fmt.Errorf("subscribe %s: %w", sub.Subject, le)
	}
	s.log.Info().Str("subject", sub.Subject).Msg("answering queries")
	<-ctx.Done()
	if err := sub.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		s.log.Debug().Err(err).Msg("drain query subscription")
	}
	return nil
}

func (s *Service) dispatch(ctx context.Context, m *nats.Msg) {
	if m.Reply == "" {
		return // nobody to answer
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.respond(m, protocol.ErrorReply(protocol.CodeInternal, "agent busy: too many queries in flight, retry"), "", time.Now())
		return
	}
	go func() {
		defer func() { <-s.sem }()
		s.answer(ctx, m)
	}()
}

func (s *Service) answer(ctx context.Context, m *nats.Msg) {
	start := time.Now()
	var q protocol.Query
	if err := protocol.Decode(m.Data, protocol.KindQuery, &q); err != nil {
		s.respond(m, protocol.ErrorReply(protocol.CodeInvalid, err.Error()), "", start)
		return
	}
	if verb := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]; string(q.Verb) != verb {
		s.respond(m, protocol.ErrorReply(protocol.CodeInvalid,
			fmt.Sprintf("query verb %q sent on the subject of %q", q.Verb, verb)), string(q.Verb), start)
		return
	}
	qctx, cancel := context.WithTimeout(ctx, s.o.Deadline)
	defer cancel()
	out := make(chan protocol.Reply, 1)
	go func() { out <- s.run(qctx, q) }()
	select {
	case r := <-out:
		s.respond(m, r, string(q.Verb), start)
	case <-qctx.Done():
		s.respond(m, protocol.ErrorReply(protocol.CodeInternal,
			fmt.Sprintf("%s did not complete within %s", q.Verb, s.o.Deadline)), string(q.Verb), start)
	}
}

func (s *Service) respond(m *nats.Msg, r protocol.Reply, verb string, start time.Time) {
	var data []byte
	var err error
	if r.Error == nil && r.Result != nil {
		data, err = protocol.EncodeResult(r.Result) // encoded by encoding/json already
	} else {
		data, err = protocol.Encode(r)
	}
	if err != nil {
		data, _ = protocol.Encode(protocol.ErrorReply(protocol.CodeInternal, err.Error()))
	}
	ev := s.log.Debug()
	if r.Error != nil {
		ev = s.log.Info().Str("code", r.Error.Code)
	}
	if err := m.Respond(data); err != nil {
		ev = s.log.Warn().Err(err)
	}
	ev.Str("verb", verb).Dur("duration", time.Since(start)).Msg("query answered")
}
