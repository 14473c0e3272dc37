package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rs/zerolog"
)

// ErrExited is reported for a service that returned nil before it was
// stopped: a process that silently stopped answering queries or probes is
// worse than one that restarts.
var ErrExited = errors.New("stopped on its own")

// Process owns the agent's background services and its fatal-error path.
// Services stop in the reverse order they were added, so what started first
// (the probes) answers until the very end.
type Process struct {
	log    zerolog.Logger
	cancel context.CancelCauseFunc
	ctx    context.Context

	mu      sync.Mutex
	stages  []stage
	stopped bool
}

type stage struct {
	name string
	stop func() error
}

// New returns a Process and the context the caller's foreground work runs
// on: it ends when parent ends (SIGTERM) or at the first Fatal.
func New(parent context.Context, log zerolog.Logger) (*Process, context.Context) {
	ctx, cancel := context.WithCancelCause(parent)
	return &Process{log: log, ctx: ctx, cancel: cancel}, ctx
}

// Fatal stops the process with err as its outcome. Only the first error
// counts; Fatal never blocks, so several failing controllers cannot wedge
// the shutdown that the first one started.
func (p *Process) Fatal(err error) {
	if err == nil {
		err = errors.New("fatal error without detail")
	}
	p.cancel(err)
}

// Go runs fn until Stop reaches it. Its context is not the caller's: a
// SIGTERM must not stop the probes or the queries before the leader's work
// has finished. If fn returns earlier, the process stops with its error.
func (p *Process) Go(name string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(p.ctx))
	done := make(chan error, 1)
	go func() {
		err := fn(ctx)
		if ctx.Err() == nil {
			if err == nil {
				err = ErrExited
			}
			p.Fatal(fmt.Errorf("%s: %w", name, err))
		}
		done <- err
	}()
	p.push(name, func() error {
		cancel()
		return <-done
	})
}

// Defer adds a stop-only stage (closing a connection).
func (p *Process) Defer(name string, stop func()) {
	p.push(name, func() error { stop(); return nil })
}

func (p *Process) push(name string, stop func() error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stages = append(p.stages, stage{name: name, stop: stop})
}

// Stop stops every stage in reverse order, each after the previous one has
// returned, and reports the outcome: the fatal error if there was one,
// else foreground (the caller's own result, e.g. leader.Run's) joined with
// what the stages returned. It is safe to call again (a deferred Stop after
// an explicit one); later calls return nil.
func (p *Process) Stop(foreground error) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	stages := p.stages
	p.mu.Unlock()

	p.cancel(nil) // the foreground has returned; a later Fatal changes nothing
	errs := []error{foreground}
	for i := len(stages) - 1; i >= 0; i-- {
		s := stages[i]
		if err := s.stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
		p.log.Debug().Str("stage", s.name).Msg("stopped")
	}
	if cause := context.Cause(p.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return errors.Join(errs...)
}
