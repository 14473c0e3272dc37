package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sc-extension/sc-extension/pkg/version"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// versionInfo is what `scctl version` prints; Agent only with --cluster.
type versionInfo struct {
	Client clientVersion `json:"client"`
	Agent  *agentVersion `json:"agent,omitempty"`
}

// clientVersion is scctl's release and the envelope version it writes.
type clientVersion struct {
	Version    string `json:"version"`
	APIVersion string `json:"apiVersion"`
}

// agentVersion comes from the agent's last heartbeat on the status stream,
// so it answers even while the agent is down; Time and AgeSeconds say how
// old it is. APIVersions and RecordSchema are filled in for an agent that
// does not send them (v0.1.0: sc.v1, schema 1).
type agentVersion struct {
	Cluster      string   `json:"cluster"`
	Version      string   `json:"version"`
	APIVersions  []string `json:"apiVersions"`
	RecordSchema int      `json:"recordSchema"`
	Pod          string   `json:"pod,omitempty"`
	Ready        bool     `json:"ready"`
	Time         string   `json:"heartbeatTime"`
	AgeSeconds   int64    `json:"heartbeatAgeSeconds"`
}

// clock is the time heartbeat ages are measured against; tests fix it.
var clock = time.Now

const unknownVersion = "unknown"

func (a *App) versionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version [--cluster ID]",
		Short: "Print scctl's version and protocol and, with --cluster, the versions the cluster's agent last reported",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := versionInfo{Client: clientVersion{Version: version.Version, APIVersion: protocol.APIVersion}}
			out := printer{w: a.Stdout, format: g.output}
			if g.cluster == "" {
				return out.version(info)
			}
			err := a.withSession(cmd, g, func(s *session) error {
				hb, err := s.cp.LatestHeartbeat(s.ctx)
				if err != nil {
					return err
				}
				info.Agent = &agentVersion{Cluster: hb.Cluster, Version: orUnknown(hb.AgentVersion),
					APIVersions: hb.Versions(), RecordSchema: hb.Schema(), Pod: hb.Pod, Ready: hb.Ready,
					Time: timestamp(hb.Time), AgeSeconds: int64(max(clock().Sub(hb.Time), 0) / time.Second)}
				// What a connection command would refuse or warn about,
				// said here without failing: this is where one looks.
				if err := incompatibility(g.cluster, hb); err != nil {
					fmt.Fprintf(a.Stderr, "scctl: warning: %v\n", err)
				} else if w := releaseSkew(g.cluster, hb.AgentVersion, version.Version); w != "" {
					fmt.Fprintf(a.Stderr, "scctl: warning: %s\n", w)
				}
				return nil
			})
			// The client's own version is printed even when the agent's
			// cannot be read: it is half of what the user asked.
			if perr := out.version(info); perr != nil && err == nil {
				err = perr
			}
			return err
		},
	}
}

func (p printer) version(info versionInfo) error {
	return p.print(info, func(w io.Writer) {
		fmt.Fprintf(w, "client\t%s\t(speaks %s)\n", info.Client.Version, info.Client.APIVersion)
		if ag := info.Agent; ag != nil {
			ready := "not ready"
			if ag.Ready {
				ready = "ready"
			}
			fmt.Fprintf(w, "agent\t%s\t(cluster %s, pod %s, %s, speaks %s, record schema %d, heartbeat %s, %s ago)\n",
				ag.Version, ag.Cluster, orDash(ag.Pod), ready, strings.Join(ag.APIVersions, ", "), ag.RecordSchema,
				ag.Time, age(time.Duration(ag.AgeSeconds)*time.Second))
		}
	})
}

// age is a heartbeat's age, as precise as is useful: seconds for a live
// agent (a beat every 15 s), days for one long gone.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}
