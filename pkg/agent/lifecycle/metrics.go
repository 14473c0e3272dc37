package lifecycle

import (
	"context"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// CountingStore is intake's store with each outcome counted for /metrics
// (sc_agent_requests_processed_total): applied, duplicate or error.
type CountingStore struct {
	intake.Store
	Metrics *health.Metrics
}

// Apply applies and counts the outcome.
func (s CountingStore) Apply(ctx context.Context, ch connection.Change) (connection.Connection, bool, error) {
	c, applied, err := s.Store.Apply(ctx, ch)
	switch {
	case err != nil:
		s.Metrics.RequestProcessed(health.OutcomeError)
	case applied:
		s.Metrics.RequestProcessed(health.OutcomeApplied)
	default:
		s.Metrics.RequestProcessed(health.OutcomeDuplicate)
	}
	return c, applied, err
}
