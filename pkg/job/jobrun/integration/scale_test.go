//go:build integration

package jobrun_integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// 500 queued connections are drained by one Run.
func TestRunDrains500Connections(t *testing.T) {
	if testing.Short() {
		t.Skip("500 connections against a real API server")
	}
	e := setup(t)
	const n = 500
	start := time.Now()
	for i := range n {
		e.apply(e.secretChange(fmt.Sprintf("conn%d", i)))
	}
	queued := time.Since(start)

	runs := 0
	start = time.Now()
	for {
		runs++
		sum, err := e.runner().Run(e.ctx)
		require.NoError(t, err)
		if sum.Rendered == 0 || runs >= 3 {
			break
		}
		list, err := e.store.List(e.ctx)
		require.NoError(t, err)
		pending := 0
		for _, c := range list {
			if c.Status.Phase.NeedsWork() {
				pending++
			}
		}
		if pending == 0 {
			break
		}
	}
	drained := time.Since(start)
	t.Logf("500 connections: queued in %s (store.Apply), drained by %d Runner.Run call(s) in %s", queued, runs, drained)
	assert.Equal(t, 1, runs)

	list, err := e.store.List(e.ctx)
	require.NoError(t, err)
	require.Len(t, list, n)
	for _, c := range list {
		assert.Equal(t, connection.PhaseSucceeded, c.Status.Phase, c.Spec.Name)
	}
}
