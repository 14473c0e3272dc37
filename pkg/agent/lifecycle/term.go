package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/rs/zerolog"
)

// Informers is what a term needs of an informer factory
// (informers.SharedInformerFactory has these methods).
type Informers interface {
	Start(stopCh <-chan struct{})
	WaitForCacheSync(stopCh <-chan struct{}) map[reflect.Type]bool
	Shutdown()
}

// Controller is one of the leader's controllers.
type Controller struct {
	Name string
	Run  func(context.Context) error
}

// Term is one leadership term. Its informers, controllers and intake live
// exactly as long as the term; every handler must already be registered on
// the informers, so that none misses the initial list.
type Term struct {
	Informers   []Informers
	Controllers []Controller
	// Intake consumes requests. It is the first to stop, and is waited for
	// before anything else stops, so a request being applied is finished
	// (and acked) or NAKed while the controllers still run.
	Intake func(context.Context) error
	// Synced runs once every informer has synced, until the controllers
	// stop (the heartbeat: it reports counts from the caches).
	Synced func(context.Context)
	Log    zerolog.Logger
}

// ErrIntakeExited: intake returned while the term still held; a leader
// that no longer consumes requests must give up, not sit on the Lease.
var ErrIntakeExited = errors.New("intake stopped while leading")

// Run runs the term until ctx ends (leadership lost or process stopping)
// or a part fails. It returns only once everything it started has stopped:
// nil for an ordinary end, the failure otherwise.
func (t Term) Run(ctx context.Context) error {
	// The controllers outlive ctx until intake has stopped.
	ctrlCtx, stopControllers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopControllers()
	intakeCtx, stopIntake := context.WithCancelCause(ctx)
	defer stopIntake(nil)

	for _, inf := range t.Informers {
		inf.Start(ctrlCtx.Done())
	}
	defer func() {
		for _, inf := range t.Informers {
			inf.Shutdown()
		}
	}()

	var wg sync.WaitGroup
	for _, c := range t.Controllers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(ctrlCtx); ctrlCtx.Err() == nil {
				if err == nil {
					err = ErrExited
				}
				stopIntake(fmt.Errorf("%s: %w", c.Name, err))
			}
		}()
	}
	if t.Synced != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if waitSynced(ctrlCtx, t.Informers) {
				t.Synced(ctrlCtx)
			}
		}()
	}

	intakeErr := t.Intake(intakeCtx)
	t.Log.Info().Msg("intake stopped; stopping controllers")
	stopControllers()
	wg.Wait()

	if cause := context.Cause(intakeCtx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause // a controller failed
	}
	if ctx.Err() == nil {
		if intakeErr == nil {
			return ErrIntakeExited
		}
		return fmt.Errorf("%w: %w", ErrIntakeExited, intakeErr)
	}
	if intakeErr != nil {
		// The term is over anyway; the request it was on is redelivered.
		t.Log.Error().Err(intakeErr).Msg("intake stopped with an error")
	}
	return nil
}

// waitSynced waits for every started informer of every factory.
func waitSynced(ctx context.Context, all []Informers) bool {
	for _, inf := range all {
		for _, ok := range inf.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return false
			}
		}
	}
	return true
}
