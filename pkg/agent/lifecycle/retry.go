package lifecycle

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Backoff is Retry's delay policy: Initial, doubling up to Max, then Max
// for as long as the context lives. It is written out because wait.Backoff
// stops retrying altogether once its Cap is reached.
type Backoff struct {
	Initial, Max time.Duration
	// Jitter adds up to this fraction of each delay, so replicas restarted
	// together do not retry in step.
	Jitter float64
	// Sleep waits d or until ctx ends; nil waits on a timer. Tests record
	// the delays instead of waiting them out.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Retry calls fn until it succeeds, returns an error permanent says
// retrying cannot fix, or ctx ends. retrying is told each failure and the
// delay before the next attempt (for a log line).
func Retry[T any](ctx context.Context, b Backoff, fn func(context.Context) (T, error),
	permanent func(error) bool, retrying func(err error, delay time.Duration)) (T, error) {
	sleep := b.Sleep
	if sleep == nil {
		sleep = timerSleep(b.Jitter)
	}
	delay := b.Initial
	for {
		v, err := fn(ctx)
		if err == nil || (permanent != nil && permanent(err)) {
			return v, err
		}
		if ctx.Err() != nil {
			return v, fmt.Errorf("%w; last attempt: %w", ctx.Err(), err)
		}
		if retrying != nil {
			retrying(err, delay)
		}
		if serr := sleep(ctx, delay); serr != nil {
			return v, fmt.Errorf("%w; last attempt: %w", serr, err)
		}
		delay = min(2*delay, b.Max)
	}
}

func timerSleep(jitter float64) func(context.Context, time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		if jitter > 0 { // wait.Jitter treats 0 as 1.0
			d = wait.Jitter(d, jitter)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
}
