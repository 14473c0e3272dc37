package lifecycle_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/agent/lifecycle"
)

var (
	errUnavailable = errors.New("connection refused")
	errBadKey      = errors.New("secret holds no curve key")
)

// attempts fails with errs in turn, then succeeds with "key".
func attempts(n *int, errs ...error) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		*n++
		if *n <= len(errs) {
			return "", errs[*n-1]
		}
		return "key", nil
	}
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// The delay doubles up to Max and then stays there: retrying never stops
// while the context lives (wait.Backoff would give up at its cap).
func TestRetryDoublesUpToMaxAndKeepsGoing(t *testing.T) {
	var slept, told []time.Duration
	b := lifecycle.Backoff{Initial: time.Second, Max: 10 * time.Second,
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }}
	var n int
	v, err := lifecycle.Retry(context.Background(), b, attempts(&n, repeat(errUnavailable, 8)...),
		func(err error) bool { return errors.Is(err, errBadKey) },
		func(err error, d time.Duration) {
			assert.ErrorIs(t, err, errUnavailable)
			told = append(told, d)
		})
	require.NoError(t, err)
	assert.Equal(t, "key", v)
	assert.Equal(t, 9, n)
	s := time.Second
	want := []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 10 * s, 10 * s, 10 * s, 10 * s}
	assert.Equal(t, want, slept)
	assert.Equal(t, want, told, "each retry is announced with its delay")
}

func TestRetryStopsAtAPermanentError(t *testing.T) {
	var sleeps int
	b := lifecycle.Backoff{Initial: time.Second, Max: time.Minute,
		Sleep: func(context.Context, time.Duration) error { sleeps++; return nil }}
	var n int
	_, err := lifecycle.Retry(context.Background(), b, attempts(&n, errUnavailable, errBadKey),
		func(err error) bool { return errors.Is(err, errBadKey) }, nil)
	require.ErrorIs(t, err, errBadKey)
	assert.Equal(t, 2, n)
	assert.Equal(t, 1, sleeps)
}

func TestRetryStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b := lifecycle.Backoff{Initial: time.Second, Max: time.Minute,
		Sleep: func(ctx context.Context, _ time.Duration) error { cancel(); return ctx.Err() }}
	var n int
	_, err := lifecycle.Retry(ctx, b, attempts(&n, repeat(errUnavailable, 100)...), nil, nil)
	require.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, errUnavailable, "the last failure is kept for the log")
	assert.Equal(t, 1, n)
}

// The production sleep honours the context instead of waiting out a long
// delay.
func TestRetryTimerSleepEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n int
	_, err := lifecycle.Retry(ctx, lifecycle.Backoff{Initial: time.Hour, Max: time.Hour, Jitter: 0.2},
		attempts(&n, repeat(errUnavailable, 100)...), nil, func(error, time.Duration) { cancel() })
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, n)
}
