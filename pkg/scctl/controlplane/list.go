package controlplane

import (
	"context"
	"errors"
	"fmt"

	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// ErrPaging: the agent's pages did not move on (a repeated continue token);
// the walk stops rather than loop.
var ErrPaging = errors.New("list paging did not advance")

// Querier asks one query; *Client is one.
type Querier interface {
	Query(ctx context.Context, q protocol.Query, out any) error
}

// ListOptions narrow and size a list.
type ListOptions struct {
	// Namespace keeps the connections rendering into it (filtered by the
	// agent); "" lists all.
	Namespace string
	// Limit is the page size; 0 leaves it to the agent
	// (protocol.DefaultPageSize).
	Limit int
}

// Listing is a whole list: every connection the agent could read, in
// name order, and the records it could not.
type Listing struct {
	Items  []protocol.ConnectionView
	Errors []protocol.RecordError
	// Pages is the number of queries it took.
	Pages int
}

// List walks every page of the list. A page is one query, each within the
// client's timeout; ctx bounds the walk. An agent of v0.1.0 answers the
// first query with the whole list, which ends the walk.
func List(ctx context.Context, q Querier, o ListOptions) (Listing, error) {
	var out Listing
	query := protocol.Query{Header: protocol.NewHeader(protocol.KindQuery), Verb: protocol.VerbList,
		Namespace: o.Namespace, Limit: o.Limit}
	if query.Limit == 0 {
		query.Limit = protocol.DefaultPageSize
	}
	seen := map[string]bool{}
	for {
		var page protocol.ListPage
		if err := q.Query(ctx, query, &page); err != nil {
			if out.Pages > 0 {
				return out, fmt.Errorf("page %d of the list: %w", out.Pages+1, err)
			}
			return out, err
		}
		out.Pages++
		out.Items = append(out.Items, page.Items...)
		out.Errors = append(out.Errors, page.Errors...)
		if page.Continue == "" {
			return out, nil
		}
		if seen[page.Continue] {
			return out, fmt.Errorf("%w: continue token repeated after %d pages", ErrPaging, out.Pages)
		}
		seen[page.Continue] = true
		query.Continue = page.Continue
	}
}

// List walks every page of the list of c's cluster.
func (c *Client) List(ctx context.Context, o ListOptions) (Listing, error) { return List(ctx, c, o) }
