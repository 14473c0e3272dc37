package jobrun

import (
	"context"

	"k8s.io/client-go/util/flowcontrol"
)

// lane is the API budget a request is charged to: due work's, or the
// re-render's (Config.RenderAll).
type lane int

const (
	laneDue lane = iota
	laneRerender
)

type laneKey struct{}

// onLane charges the requests made with ctx to l's budget.
func onLane(ctx context.Context, l lane) context.Context {
	return context.WithValue(ctx, laneKey{}, l)
}

// laneOf is ctx's lane; a request nobody marked (the records' watch, the
// run's own Job and Event) is due work's.
func laneOf(ctx context.Context) lane {
	l, _ := ctx.Value(laneKey{}).(lane)
	return l
}

// Limiter is sc-job's client-side rate limiter (rest.Config.RateLimiter
// of its one client): a request made to re-render a settled connection
// waits in its own token bucket, every other request in due work's. A
// request that arrives during a re-render of 10,000 connections then
// waits for the due work before it, not behind the re-render's requests
// in one shared bucket; the API server may see both budgets at once.
//
// One client, not one per budget: a run's Applier (the lock on each
// shared ServiceAccount, the UIDs created this run), store and Events
// are the same for both kinds of work, so a connection is written the
// same way whichever budget pays for it.
type Limiter struct {
	due, rerender flowcontrol.RateLimiter
}

var _ flowcontrol.RateLimiter = (*Limiter)(nil)

// NewLimiter charges due work (and anything unmarked) to due and the
// re-render to rerender; with rerender nil both share due's budget, as
// before sc-job had two.
func NewLimiter(due, rerender flowcontrol.RateLimiter) *Limiter {
	return &Limiter{due: due, rerender: rerender}
}

func (l *Limiter) of(ln lane) flowcontrol.RateLimiter {
	if ln == laneRerender && l.rerender != nil {
		return l.rerender
	}
	return l.due
}

// Wait takes a token from the bucket of ctx's lane; client-go calls it
// before every request, with the request's context.
func (l *Limiter) Wait(ctx context.Context) error {
	return l.of(laneOf(ctx)).Wait(ctx)
}

// Accept and TryAccept have no context: due work's bucket.
func (l *Limiter) Accept()         { l.due.Accept() }
func (l *Limiter) TryAccept() bool { return l.due.TryAccept() }

// QPS is the most the API server may see: both budgets together (one,
// when they share it).
func (l *Limiter) QPS() float32 {
	if l.rerender == nil {
		return l.due.QPS()
	}
	return l.due.QPS() + l.rerender.QPS()
}

func (l *Limiter) Stop() {
	l.due.Stop()
	if l.rerender != nil {
		l.rerender.Stop()
	}
}
