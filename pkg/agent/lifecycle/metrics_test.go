package lifecycle_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/agent/lifecycle"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// outcomes answers Apply with applied, duplicate or err in turn.
type outcomes []error

var errDuplicate = errors.New("duplicate")

func (o *outcomes) Apply(context.Context, connection.Change) (connection.Connection, bool, error) {
	next := (*o)[0]
	*o = (*o)[1:]
	switch {
	case next == nil:
		return connection.Connection{Generation: 1}, true, nil
	case errors.Is(next, errDuplicate):
		return connection.Connection{Generation: 1}, false, nil
	default:
		return connection.Connection{}, false, next
	}
}

func TestCountingStoreCountsEachOutcome(t *testing.T) {
	m := health.NewMetrics()
	conflict := errors.New("conflict")
	s := lifecycle.CountingStore{Store: &outcomes{nil, nil, errDuplicate, conflict}, Metrics: m}
	for range 4 {
		_, _, _ = s.Apply(context.Background(), connection.Change{})
	}
	_, applied, err := (lifecycle.CountingStore{Store: &outcomes{conflict}, Metrics: m}).Apply(context.Background(), connection.Change{})
	assert.False(t, applied)
	assert.ErrorIs(t, err, conflict, "the store's answer passes through")

	families, err := m.Registry().Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "sc_agent_requests_processed_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				got[l.GetValue()] = metric.GetCounter().GetValue()
			}
		}
	}
	assert.Equal(t, map[string]float64{health.OutcomeApplied: 2, health.OutcomeDuplicate: 1, health.OutcomeError: 2}, got)
}
