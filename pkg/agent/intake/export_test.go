package intake

import "time"

// WithClock makes the intake read the time from now when it decides
// whether a request expired, so that a test can age a request without
// waiting.
func WithClock(now func() time.Time) func(*Options) {
	return func(o *Options) { o.now = now }
}
