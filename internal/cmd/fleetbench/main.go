// Command fleetbench is `make fleet-bench`: one control plane driving a
// fleet of simulated clusters through a 3-node JetStream cluster of real
// server processes on loopback (issue 12). Each simulated cluster runs the
// agent's own NATS code paths (natsbus.Connect, intake, statuspub, query,
// heartbeat) over internal/testkit/memstore instead of the Kubernetes API;
// the control plane side is pkg/scctl/controlplane. It measures request →
// final status latency at a steady rate and in a burst, the servers' memory
// and CPU, and a node killed (SIGKILL) mid-run and restarted: every request
// must be applied exactly once. Not part of CI; docs/bench.md, "Fleet".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// config is the bench's flags.
type config struct {
	Clusters     int
	Rate         float64
	Duration     time.Duration
	Burst        int
	KillDuration time.Duration
	KillAt       time.Duration
	RestartAfter time.Duration
	QueryRate    float64
	Heartbeat    time.Duration
	Timeout      time.Duration
	Grace        time.Duration
	Auth         string // "jwt" or "password"
	Servers      string // "scctl" (scctl server processes) or "self" (this binary as a bare node)
	Scctl        string // a prebuilt scctl binary; empty: go build ./scctl
	WorkDir      string
	Out          string
	Seed         uint64
	BasePort     int
	LogLevel     string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == nodeCommand {
		if err := runNode(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "fleetbench node:", err)
			os.Exit(1)
		}
		return
	}
	var c config
	flag.IntVar(&c.Clusters, "clusters", 1000, "simulated clusters, each with its own agent connection, consumer and user")
	flag.Float64Var(&c.Rate, "rate", 20, "requests per second in the steady and kill phases, spread over random clusters")
	flag.DurationVar(&c.Duration, "duration", 60*time.Second, "length of the steady phase")
	flag.IntVar(&c.Burst, "burst", 2000, "requests published at once in the burst phase")
	flag.DurationVar(&c.KillDuration, "kill-duration", 60*time.Second, "length of the node-kill phase (0 skips it)")
	flag.DurationVar(&c.KillAt, "kill-at", 15*time.Second, "when, into the kill phase, the request stream's leader is killed")
	flag.DurationVar(&c.RestartAfter, "restart-after", 10*time.Second, "how long the killed node stays down")
	flag.Float64Var(&c.QueryRate, "query-rate", 5, "show/list queries per second during the steady phase")
	flag.DurationVar(&c.Heartbeat, "heartbeat", 15*time.Second, "each agent's heartbeat interval (the chart's default is 15s)")
	flag.DurationVar(&c.Timeout, "timeout", 20*time.Minute, "the whole run's time limit")
	flag.DurationVar(&c.Grace, "grace", 60*time.Second, "how long a phase waits for its last final statuses")
	flag.StringVar(&c.Servers, "servers", "scctl", "server processes: scctl (scctl server with --cluster-* flags) or self (bare nats-server nodes from this binary)")
	flag.StringVar(&c.Auth, "auth", "jwt", "client authentication: jwt (one shared keystore, a .creds per cluster) or password (a user and password per cluster)")
	flag.StringVar(&c.Scctl, "scctl", "", "scctl binary to run (default: go build ./scctl into the work directory)")
	flag.StringVar(&c.WorkDir, "workdir", "", "store directories and logs (default: a temporary directory, removed afterwards)")
	flag.StringVar(&c.Out, "out", "_output/fleet-bench.md", "where the markdown report is written (also printed)")
	flag.Uint64Var(&c.Seed, "seed", 1, "seed of the random cluster choice")
	flag.IntVar(&c.BasePort, "base-port", 0, "first of six loopback ports (3 client, 3 route); 0 picks free ones")
	flag.StringVar(&c.LogLevel, "log-level", "warn", "agents' log level (written to the work directory)")
	flag.Parse()
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05"}).With().Timestamp().Logger()
	if err := run(ctx, c, log); err != nil {
		log.Error().Err(err).Msg("fleet bench failed")
		os.Exit(1)
	}
}

func (c config) validate() error {
	switch {
	case c.Clusters < 1:
		return errors.New("-clusters must be at least 1")
	case c.Rate <= 0:
		return errors.New("-rate must be positive")
	case c.Servers != "scctl" && c.Servers != "self":
		return fmt.Errorf("-servers %q: scctl or self", c.Servers)
	case c.Auth != "jwt" && c.Auth != "password":
		return fmt.Errorf("-auth %q: jwt or password", c.Auth)
	case c.KillDuration > 0 && c.KillAt+c.RestartAfter >= c.KillDuration:
		return errors.New("-kill-at + -restart-after must end within -kill-duration")
	}
	return nil
}

// run is the whole bench: servers, agents, the phases, the report.
func run(ctx context.Context, c config, log zerolog.Logger) error {
	work := c.WorkDir
	if work == "" {
		dir, err := os.MkdirTemp("", "fleetbench-")
		if err != nil {
			return fmt.Errorf("work directory: %w", err)
		}
		defer os.RemoveAll(dir)
		work = dir
	}
	work, err := filepath.Abs(work)
	if err != nil {
		return err
	}
	rep := &report{cfg: c, started: time.Now(), loadStart: loadAverage()}
	clusters := clusterNames(c.Clusters)

	start := time.Now()
	cp, err := startControlPlane(ctx, c, work, clusters, log)
	if err != nil {
		return err
	}
	defer cp.stop()
	rep.serversUp, rep.added = time.Since(start), cp.added
	log.Info().Dur("took", rep.serversUp).Str("servers", c.Servers).Msg("3-node JetStream cluster ready")

	start = time.Now()
	fleet, err := startFleet(ctx, c, work, cp, clusters, log)
	if err != nil {
		return err
	}
	defer fleet.stop()
	rep.agentsUp = time.Since(start)
	log.Info().Dur("took", rep.agentsUp).Int("clusters", len(clusters)).Msg("agents consuming and answering queries")

	b, err := newBench(ctx, c, cp, fleet, log)
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.runPhases(ctx, rep); err != nil {
		rep.err = err
		log.Error().Err(err).Msg("phase failed; writing what was measured")
	}
	b.collect(ctx, rep)
	rep.totals = b.totals(fleet)
	rep.finished = time.Now()
	rep.loadEnd = loadAverage()
	text := rep.markdown()
	fmt.Print(text)
	if c.Out != "" {
		if err := os.MkdirAll(filepath.Dir(c.Out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(c.Out, []byte(text), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		log.Info().Str("file", c.Out).Msg("report written")
	}
	if rep.err != nil {
		return rep.err
	}
	if t := rep.totals; t.lost > 0 || t.duplicated > 0 {
		return fmt.Errorf("%d requests lost, %d applied twice", t.lost, t.duplicated)
	}
	return nil
}

// clusterNames are the fleet's cluster ids, c0001 and on.
func clusterNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("c%04d", i+1)
	}
	return out
}
