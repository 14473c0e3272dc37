//go:build integration

package jobrun_integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/job/jobrun"
)

// A record created while a run lingers reaches it through its watch on a
// real API server and is rendered by it: one run, one Event, one
// self-deletion for both connections.
func TestRecordCreatedWhileTheRunLingersIsRenderedByIt(t *testing.T) {
	const linger = 30 * time.Second
	e := setup(t)
	e.ownJob()
	e.apply(e.secretChange("db1"))
	clk := clocktesting.NewFakeClock(time.Now())
	r := e.runner(func(c *jobrun.Config) { c.Linger, c.Clock = linger, clk })

	type outcome struct {
		sum jobrun.Summary
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		sum, err := r.Run(e.ctx)
		done <- outcome{sum, err}
	}()
	// Idle and lingering: its linger timer waits on the clock.
	require.Eventually(t, clk.HasWaiters, time.Minute, 10*time.Millisecond, "the run never lingered")
	require.Equal(t, connection.PhaseSucceeded, e.get("db1").Status.Phase)
	require.True(t, e.jobExists(), "a lingering run keeps its Job")

	db2 := e.secretChange("db2")
	e.apply(db2)
	require.Eventually(t, func() bool { return e.get("db2").Status.Phase == connection.PhaseSucceeded },
		time.Minute, 10*time.Millisecond, "the lingering run never rendered db2")

	var out outcome
	require.Eventually(t, func() bool {
		select {
		case out = <-done:
			return true
		default:
		}
		if clk.HasWaiters() {
			clk.Step(linger)
		}
		return false
	}, time.Minute, 10*time.Millisecond, "the run did not end after its linger")
	require.NoError(t, out.err)
	assert.Equal(t, 2, out.sum.Rendered)
	assert.Equal(t, 1, out.sum.Arrived)
	assert.False(t, e.jobExists(), "the run deleted its Job once it ended")

	sec, err := e.client.CoreV1().Secrets(e.target).Get(context.Background(), "sc-db2-secret", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, db2.Credentials["AZURE_REDIS_CONNECTIONSTRING"], string(sec.Data["AZURE_REDIS_CONNECTIONSTRING"]))
	evs, err := e.client.EventsV1().Events(e.sys).List(e.ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var notes []string
	for _, ev := range evs.Items {
		if ev.ReportingController == jobrun.ReportingController {
			notes = append(notes, ev.Note)
		}
	}
	assert.Equal(t, []string{"sc-job: 2 connections rendered, 0 deleted, 0 failed; 1 arrived while it ran"}, notes, "one Event for the run")
}
