package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sc-extension/sc-extension/pkg/version"
)

// versionInfo is what `scctl version` prints; Agent only with --cluster.
type versionInfo struct {
	Client clientVersion `json:"client"`
	Agent  *agentVersion `json:"agent,omitempty"`
}

type clientVersion struct {
	Version string `json:"version"`
}

// agentVersion comes from the agent's last heartbeat on the status stream,
// so it answers even while the agent is down; Time says how old it is.
type agentVersion struct {
	Cluster string `json:"cluster"`
	Version string `json:"version"`
	Pod     string `json:"pod,omitempty"`
	Ready   bool   `json:"ready"`
	Time    string `json:"heartbeatTime"`
}

// unknownVersion stands for a heartbeat without agentVersion: an agent
// older than the field.
const unknownVersion = "unknown"

func (a *App) versionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version [--cluster ID]",
		Short: "Print scctl's version and, with --cluster, the version the cluster's agent last reported",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := versionInfo{Client: clientVersion{Version: version.Version}}
			out := printer{w: a.Stdout, format: g.output}
			if g.cluster == "" {
				return out.version(info)
			}
			err := a.withSession(cmd, g, func(s *session) error {
				hb, err := s.cp.LatestHeartbeat(s.ctx)
				if err != nil {
					return err
				}
				info.Agent = &agentVersion{Cluster: hb.Cluster, Version: hb.AgentVersion, Pod: hb.Pod,
					Ready: hb.Ready, Time: timestamp(hb.Time)}
				if info.Agent.Version == "" {
					info.Agent.Version = unknownVersion
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
		fmt.Fprintf(w, "client\t%s\n", info.Client.Version)
		if ag := info.Agent; ag != nil {
			ready := "not ready"
			if ag.Ready {
				ready = "ready"
			}
			fmt.Fprintf(w, "agent\t%s\t(cluster %s, pod %s, %s, heartbeat %s)\n",
				ag.Version, ag.Cluster, orDash(ag.Pod), ready, ag.Time)
		}
	})
}
