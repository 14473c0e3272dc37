package query

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Reader is the agent's read-only view of its stored connections (pkg/kube/store
// implements it). It never returns credential values: a Spec has none.
type Reader interface {
	List(ctx context.Context) ([]connection.Connection, error)
	// Get takes the connection's object id (connection.ObjectID).
	Get(ctx context.Context, id string) (connection.Connection, error)
	Validate(ctx context.Context, c connection.Connection) (protocol.ValidateResult, error)
}

// errInvalid marks a query the agent cannot answer as asked.
var errInvalid = errors.New("invalid query")

func (s *Service) run(ctx context.Context, q protocol.Query) protocol.Reply {
	result, err := s.result(ctx, q)
	switch {
	case err == nil:
		r, err := protocol.NewReply(result)
		if err != nil {
			return protocol.ErrorReply(protocol.CodeInternal, err.Error())
		}
		return r
	case errors.Is(err, errInvalid), errors.Is(err, connection.ErrInvalid):
		return protocol.ErrorReply(protocol.CodeInvalid, err.Error())
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
		all, err := s.o.Reader.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("list connections: %w", err)
		}
		views := []protocol.ConnectionView{}
		for _, c := range all {
			if q.Namespace == "" || c.Spec.Scope == q.Namespace {
				views = append(views, View(c))
			}
		}
		sort.Slice(views, func(i, j int) bool { return views[i].Spec.Name < views[j].Spec.Name })
		return views, nil
	case protocol.VerbShow, protocol.VerbListConfiguration, protocol.VerbValidate:
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

// Configuration lists the keys as they land in the rendered Secret. A
// credential's value is "" even if a malformed spec carried one: the
// catalog's rule is checked here too, not only the spec's own flag.
func Configuration(s connection.Spec) []protocol.ConfigurationItem {
	items := make([]protocol.ConfigurationItem, 0, len(s.Configurations))
	for _, cfg := range s.Configurations {
		cred := cfg.Credential || catalog.IsCredential(cfg.Name)
		item := protocol.ConfigurationItem{Name: s.RenderedKey(cfg.Name), Value: cfg.Value, Credential: cred}
		if cred {
			item.Value = ""
		}
		items = append(items, item)
	}
	return items
}
