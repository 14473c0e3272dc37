//go:build integration

package jobrun_integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/job/jobrun"
)

// held is a rate limiter that lets nothing through until released: a
// re-render budget that is spent for as long as the test likes.
type held struct {
	release chan struct{}
	mu      sync.Mutex
	waiting int
}

func (h *held) Wait(ctx context.Context) error {
	h.mu.Lock()
	h.waiting++
	h.mu.Unlock()
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *held) waiters() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.waiting
}

func (h *held) Accept()         {}
func (h *held) TryAccept() bool { return false }
func (h *held) QPS() float32    { return 0 }
func (h *held) Stop()           {}

// A request made during a re-render is rendered on due work's budget:
// with the re-render's budget spent (not one of its requests let
// through), a new connection still reaches Succeeded, every request of
// it (its record, credentials, namespace, rendered Secret, status write)
// through the run's one client on a real API server. Once the budget
// frees, the re-render finishes in the same run.
func TestDueWorkIsRenderedWhileTheReRenderBudgetIsSpent(t *testing.T) {
	const settled = 4
	e := setup(t)
	for i := range settled {
		c := e.apply(e.secretChange(fmt.Sprintf("old%d", i)))
		_, err := e.store.UpdateStatus(e.ctx, c.Spec.ID(), func(c *connection.Connection) error {
			c.Status.Phase, c.Status.ObservedGeneration = connection.PhaseSucceeded, c.Generation
			return nil
		})
		require.NoError(t, err)
	}
	rerender := &held{release: make(chan struct{})}
	run := kubetest.New(t, func(c *rest.Config) {
		c.RateLimiter = jobrun.NewLimiter(flowcontrol.NewTokenBucketRateLimiter(200, 400), rerender)
	})
	// A worker for each re-render, all held, and one for the new request.
	r := e.runner(func(c *jobrun.Config) {
		c.Client, c.Dynamic, c.Store, c.RenderAll, c.Workers = run.Clientset, run.Dynamic, nil, true, settled+1
	})
	type outcome struct {
		sum jobrun.Summary
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		sum, err := r.Run(e.ctx)
		done <- outcome{sum, err}
	}()
	require.Eventually(t, func() bool { return rerender.waiters() == settled }, time.Minute, 5*time.Millisecond,
		"every re-render waits for its budget")

	e.apply(e.secretChange("new1"))
	require.Eventually(t, func() bool { return e.get("new1").Status.Phase == connection.PhaseSucceeded },
		time.Minute, 10*time.Millisecond, "the new connection was not rendered while the re-render's budget was spent")
	assert.Equal(t, settled, rerender.waiters(), "the new connection asked the re-render's budget for nothing")
	for i := range settled {
		assert.Empty(t, e.get(fmt.Sprintf("old%d", i)).Status.Resources, "no re-render got through yet")
	}

	close(rerender.release)
	out := <-done
	require.NoError(t, out.err)
	assert.Equal(t, settled+1, out.sum.Rendered)
	assert.Equal(t, 1, out.sum.Arrived)
	for i := range settled {
		assert.NotEmpty(t, e.get(fmt.Sprintf("old%d", i)).Status.Resources, "re-rendered once the budget freed")
	}
}
