package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// defaultHeartbeatInterval is the agent's (--heartbeat-interval, chart
// heartbeatInterval); a cluster is reachable while its last heartbeat is
// younger than three of them.
const defaultHeartbeatInterval = 15 * time.Second

// clusterView is one row of `scctl cluster list`.
type clusterView struct {
	Cluster   string `json:"cluster"`
	Reachable bool   `json:"reachable"`
	// LastHeartbeat is when the control plane's stream stored the last
	// heartbeat (the server's clock, not the agent's).
	LastHeartbeat *time.Time     `json:"lastHeartbeat,omitempty"`
	AgentVersion  string         `json:"agentVersion,omitempty"`
	Connections   int            `json:"connections"`
	Phases        map[string]int `json:"phases,omitempty"`
	// WaitingRequests are undelivered or unacknowledged on its consumer.
	WaitingRequests uint64 `json:"waitingRequests"`
	Consumer        bool   `json:"consumer"`
	// Issued: the keystore (--keystore) lists credentials for it.
	Issued bool `json:"issued,omitempty"`
}

func (a *App) clusterListCommand(g *globals, cf *clusterFlags) *cobra.Command {
	interval := defaultHeartbeatInterval
	cmd := &cobra.Command{
		Use:   "list [--heartbeat-interval 15s]",
		Short: "List the clusters: last heartbeat, agent version, connections by phase, reachable",
		Long: "list shows every cluster with a consumer on the request stream (and, with --keystore, every cluster\n" +
			"with credentials), with its agent's last heartbeat from the status stream. A cluster is reachable\n" +
			"while its last heartbeat is younger than three heartbeat intervals.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return usagef("--heartbeat-interval: must be positive, got %s", interval)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			var issued []string
			k, err := a.openKeystore(cf)
			switch {
			case err == nil:
				if issued, err = k.Clusters(); err != nil {
					return err
				}
			case errors.Is(err, ErrUsage): // no keystore: list from the streams alone
				k = nil
			default:
				return err
			}
			nc, err := dialNATS(ctx, g, k, false)
			if err != nil {
				return err
			}
			defer nc.Close()
			views, err := listClusters(ctx, nc, issued, interval, time.Now)
			if err != nil {
				return err
			}
			return printer{w: a.Stdout, format: g.output}.print(views, func(w io.Writer) { printClusters(w, views) })
		},
	}
	cmd.Flags().DurationVar(&interval, "heartbeat-interval", interval, "the agents' heartbeat interval")
	return cmd
}

// listClusters joins the request stream's consumers, the issued
// clusters and the last heartbeat of each, judging reachability by clock.
func listClusters(ctx context.Context, nc *nats.Conn, issued []string, interval time.Duration, clock func() time.Time) ([]clusterView, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	byID := map[string]*clusterView{}
	row := func(id string) *clusterView {
		if v, ok := byID[id]; ok {
			return v
		}
		v := &clusterView{Cluster: id}
		byID[id] = v
		return v
	}
	for _, id := range issued {
		row(id).Issued = true
	}
	s, err := js.Stream(ctx, protocol.RequestStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", protocol.RequestStream, err)
	}
	consumers := s.ListConsumers(ctx)
	for info := range consumers.Info() {
		id, ok := strings.CutPrefix(info.Name, protocol.ConsumerName(""))
		if !ok || protocol.ValidateCluster(id) != nil {
			continue
		}
		v := row(id)
		v.Consumer = true
		v.WaitingRequests = info.NumPending + uint64(info.NumAckPending)
	}
	if err := consumers.Err(); err != nil {
		return nil, fmt.Errorf("list consumers of %s: %w", protocol.RequestStream, err)
	}
	beats, err := lastHeartbeatsRetried(ctx, js)
	if err != nil {
		return nil, err
	}
	// After the read: every heartbeat read is older than now.
	now := clock()
	for id, v := range byID {
		hb, ok := beats[id]
		if !ok {
			continue
		}
		at := hb.at.UTC()
		v.LastHeartbeat = &at
		v.Reachable = now.Sub(hb.at) < 3*interval
		v.AgentVersion, v.Connections, v.Phases = hb.AgentVersion, hb.Connections, hb.Phases
	}
	out := make([]clusterView, 0, len(byID))
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		out = append(out, *byID[id])
	}
	return out, nil
}

type storedHeartbeat struct {
	protocol.Heartbeat
	at time.Time
}

// lastHeartbeatsRetried retries lastHeartbeats while the server has no
// responder for the new consumer yet: in a JetStream cluster the
// consumer's leader may be another node, whose interest reaches ours a
// moment after the create returns.
func lastHeartbeatsRetried(ctx context.Context, js jetstream.JetStream) (map[string]storedHeartbeat, error) {
	wait := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		beats, err := lastHeartbeats(ctx, js)
		if !errors.Is(err, nats.ErrNoResponders) || attempt == 5 {
			return beats, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read heartbeats: %w", ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// lastHeartbeats reads the newest heartbeat of every cluster in one pass:
// an ordered consumer delivering the last message per heartbeat subject,
// read until none is pending. A heartbeat that does not decode still
// counts as a sign of life.
func lastHeartbeats(ctx context.Context, js jetstream.JetStream) (map[string]storedHeartbeat, error) {
	filter := protocol.HeartbeatSubject("*")
	s, err := js.Stream(ctx, protocol.StatusStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", protocol.StatusStream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", protocol.StatusStream, err)
	}
	out := make(map[string]storedHeartbeat, len(info.State.Subjects))
	if len(info.State.Subjects) == 0 {
		return out, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("read heartbeats: %w", err)
	}
	// The subject count bounds each fetch, so a fetch never waits for
	// heartbeats that are not there.
	for remaining := len(info.State.Subjects); remaining > 0; {
		batch, err := cons.Fetch(min(remaining, 256), jetstream.FetchContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("read heartbeats: %w", err)
		}
		var last *jetstream.MsgMetadata
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			last = meta
			remaining--
			parts := strings.Split(m.Subject(), ".")
			if len(parts) != 4 {
				continue
			}
			hb, _ := protocol.DecodeHeartbeat(m.Data())
			out[parts[2]] = storedHeartbeat{Heartbeat: hb, at: meta.Timestamp}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read heartbeats: %w", err)
		}
		if last == nil || last.NumPending == 0 {
			break
		}
	}
	return out, nil
}

func printClusters(w io.Writer, views []clusterView) {
	fmt.Fprintln(w, "CLUSTER\tREACHABLE\tLAST HEARTBEAT\tAGE\tVERSION\tCONNECTIONS\tPHASES\tWAITING")
	now := time.Now()
	for _, v := range views {
		last, ago := "-", "-"
		if v.LastHeartbeat != nil {
			last, ago = timestamp(*v.LastHeartbeat), age(now.Sub(*v.LastHeartbeat))
		}
		reachable := "no"
		if v.Reachable {
			reachable = "yes"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\n", v.Cluster, reachable, last, ago, orDash(v.AgentVersion),
			v.Connections, phases(v.Phases), v.WaitingRequests)
	}
}

// phases is "Failed=1,Succeeded=40", sorted by phase.
func phases(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(m))
	for _, p := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", p, m[p]))
	}
	return strings.Join(parts, ",")
}
