// Command sc-agent is the in-cluster agent of sc-extension: it consumes
// connection requests from the control plane, stores them, launches sc-job,
// publishes status, answers queries and repairs drift. This package only
// parses flags and wires the pkg/ components together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/logging"
)

func main() {
	cfg, password, err := parseConfig(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sc-agent:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
	log, err := newLogger(cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sc-agent:", err)
		os.Exit(2)
	}
	// client-go (reflectors, leader election, HandleCrash) logs through
	// klog: one JSON line format on stderr for everything the agent prints.
	logging.RouteKlog(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg, password, log); err != nil {
		log.Error().Err(err).Msg("agent stopped")
		os.Exit(1)
	}
}

func newLogger(level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || lvl == zerolog.NoLevel {
		return zerolog.Logger{}, fmt.Errorf("%w: --log-level %q is not one of debug, info, warn, error", errUsage, level)
	}
	log, err := logging.New(os.Stderr, logging.FormatJSON)
	if err != nil {
		return zerolog.Logger{}, err
	}
	return log.Level(lvl).With().Str("component", "sc-agent").Logger(), nil
}
