package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/version"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// State is the part of a heartbeat that changes; the agent supplies it.
// LastError must already be free of credential values (the agent's errors
// are).
type State struct {
	Leader      bool
	Ready       bool
	LastError   string
	Connections int
	// Phases counts the connections by phase (CountPhases).
	Phases map[string]int
}

// Options configures the heartbeat.
type Options struct {
	Cluster string
	// Version is the agent's release; default pkg/version.Version, so the
	// control plane (`scctl version --cluster`) sees the binary's own.
	Version string
	Pod     string
	// Interval between heartbeats; default 15s.
	Interval time.Duration
	State    func() State
	Logger   zerolog.Logger
}

// Run publishes a heartbeat at once and then every Interval until ctx is
// done. It is a core NATS publish: the status stream captures the subject,
// and a heartbeat lost while disconnected is replaced by the next one, so
// waiting for a JetStream ack would buy nothing.
func Run(ctx context.Context, nc *nats.Conn, o Options) error {
	if err := protocol.ValidateCluster(o.Cluster); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	if o.State == nil {
		return errors.New("heartbeat: State is required")
	}
	if o.Interval <= 0 {
		o.Interval = 15 * time.Second
	}
	if o.Version == "" {
		o.Version = version.Version
	}
	log := o.Logger.With().Str("controller", "heartbeat").Str("cluster", o.Cluster).Logger()
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		if err := publish(nc, o); err != nil {
			log.Debug().Err(err).Msg("heartbeat not sent")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func publish(nc *nats.Conn, o Options) error {
	st := o.State()
	data, err := protocol.Encode(protocol.Heartbeat{
		Header:       protocol.NewHeader(protocol.KindHeartbeat),
		Cluster:      o.Cluster,
		AgentVersion: o.Version,
		APIVersions:  protocol.APIVersions(),
		RecordSchema: record.SchemaVersion,
		Features:     protocol.Features(),
		Pod:          o.Pod,
		Leader:       st.Leader,
		Ready:        st.Ready,
		LastError:    truncate(st.LastError, 1024),
		Connections:  st.Connections,
		Phases:       st.Phases,
		Time:         time.Now().UTC(),
	})
	if err != nil {
		return err
	}
	if err := nc.Publish(protocol.HeartbeatSubject(o.Cluster), data); err != nil {
		return fmt.Errorf("publish heartbeat: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
