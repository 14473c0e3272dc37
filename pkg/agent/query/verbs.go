package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Reader is the agent's read-only view of its stored connections through the
// API server (pkg/kube/store implements it). It never returns credential
// values: a Spec has none. With a Cache, list does not read it; every other
// query does.
type Reader interface {
	List(ctx context.Context) ([]connection.Connection, error)
	// Get takes the connection's object id (connection.ObjectID).
	Get(ctx context.Context, id string) (connection.Connection, error)
	Validate(ctx context.Context, c connection.Connection) (protocol.ValidateResult, error)
}

// records is what list reads: the Cache, or a Reader listing on every
// query.
type records interface {
	Snapshot(ctx context.Context) (*Snapshot, error)
}

var (
	// errInvalid marks a query the agent cannot answer as asked.
	errInvalid = errors.New("invalid query")
	// errTooLarge marks an answer that does not fit in one reply.
	errTooLarge = errors.New("answer too large")
	// errUnreadable marks a list that cannot be answered in its shape
	// because a record cannot be read.
	errUnreadable = errors.New("unreadable records")
)

func (s *Service) run(ctx context.Context, q protocol.Query) protocol.Reply {
	result, err := s.result(ctx, q)
	switch {
	case err == nil:
		if raw, ok := result.(json.RawMessage); ok {
			// a list, encoded already: respond splices it in as is
			return protocol.Reply{Header: protocol.NewHeader(protocol.KindReply), Result: raw}
		}
		r, err := protocol.NewReply(result)
		if err != nil {
			return protocol.ErrorReply(protocol.CodeInternal, err.Error())
		}
		return r
	case errors.Is(err, errInvalid), errors.Is(err, connection.ErrInvalid):
		return protocol.ErrorReply(protocol.CodeInvalid, err.Error())
	case errors.Is(err, errTooLarge):
		return protocol.ErrorReply(protocol.CodeTooLarge, err.Error())
	case s.o.IsNotFound(err):
		return protocol.ErrorReply(protocol.CodeNotFound, fmt.Sprintf("connection %q not found in cluster %s", q.Connection, s.o.Cluster))
	default:
		return protocol.ErrorReply(protocol.CodeInternal, err.Error())
	}
}

func (s *Service) result(ctx context.Context, q protocol.Query) (any, error) {
	switch q.Verb {
	case protocol.VerbPubKey:
		if s.o.PublicKey == "" {
			return nil, errors.New("agent key not loaded yet")
		}
		return protocol.PubKeyResult{PublicKey: s.o.PublicKey}, nil
	case protocol.VerbList:
		snap, err := s.records.Snapshot(ctx)
		if err != nil {
			return nil, fmt.Errorf("list connections: %w", err)
		}
		var raw []byte
		if q.Paged() {
			raw, _, err = snap.page(q.Namespace, q.Continue, q.Limit)
		} else {
			raw, err = snap.all(q.Namespace)
		}
		return json.RawMessage(raw), err
	case protocol.VerbShow, protocol.VerbListConfiguration, protocol.VerbValidate:
		// Read through the API, not the cache: a show right after
		// `scctl connection create --wait` must see the state the wait
		// returned, a replica's cache may be a moment behind the leader's,
		// and what validate compares must be current.
		c, err := s.get(ctx, q.Connection)
		if err != nil {
			return nil, err
		}
		switch q.Verb {
		case protocol.VerbShow:
			return View(c), nil
		case protocol.VerbListConfiguration:
			return Configuration(c.Spec), nil
		}
		res, err := s.o.Reader.Validate(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("validate %s: %w", q.Connection, err)
		}
		return res, nil
	}
	return nil, fmt.Errorf("%w: unknown verb %q", errInvalid, q.Verb)
}

func (s *Service) get(ctx context.Context, name string) (connection.Connection, error) {
	if err := connection.ValidateName(name); err != nil {
		return connection.Connection{}, fmt.Errorf("%w: %w", errInvalid, err)
	}
	c, err := s.o.Reader.Get(ctx, connection.ObjectID(name))
	if err != nil {
		return connection.Connection{}, fmt.Errorf("get %s: %w", name, err)
	}
	return c, nil
}

// readerRecords lists through a Reader on every query: the records of a
// Service without a Cache.
type readerRecords struct{ r Reader }

func (a readerRecords) Snapshot(ctx context.Context) (*Snapshot, error) {
	all, err := a.r.List(ctx)
	if err != nil {
		return nil, err
	}
	return snapshotOf(all)
}

// snapshotOf is the Snapshot a Cache would hold of conns.
func snapshotOf(conns []connection.Connection) (*Snapshot, error) {
	entries := make([]*entry, 0, len(conns))
	for _, c := range conns {
		e, err := newEntry(c)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return newSnapshot(entries), nil
}

// View is what list and show return for a stored connection.
func View(c connection.Connection) protocol.ConnectionView {
	return protocol.ConnectionView{
		Spec:       c.Spec,
		ObjectID:   c.Spec.ID(),
		Generation: c.Generation,
		Deleting:   c.Deletion != nil,
		Status:     c.Status,
	}
}

// Configuration lists the keys as they land in the rendered Secret, and
// the workloads each reaches when the connection is bound. A credential's
// value is "" even if a malformed spec carried one: the catalog's rule is
// checked here too, not only the spec's own flag.
func Configuration(s connection.Spec) []protocol.ConfigurationItem {
	items := make([]protocol.ConfigurationItem, 0, len(s.Configurations))
	var mode connection.BindingMode
	if s.Binding != nil && len(s.Binding.Workloads) > 0 {
		mode = s.Binding.ModeOrDefault()
	}
	for _, cfg := range s.Configurations {
		cred := cfg.Credential || catalog.IsCredential(cfg.Name)
		item := protocol.ConfigurationItem{Name: s.RenderedKey(cfg.Name), Value: cfg.Value, Credential: cred}
		if cred {
			item.Value = ""
		}
		if mode != "" {
			// every key reaches every bound workload: a binding is per
			// connection, not per key
			item.Workloads, item.BindingMode = s.Binding.Workloads, mode
		}
		items = append(items, item)
	}
	return items
}
