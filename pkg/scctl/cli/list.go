package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func (a *App) listCommand(g *globals) *cobra.Command {
	var o controlplane.ListOptions
	cmd := &cobra.Command{
		Use:   "list [--kube-namespace NS] [--limit N]",
		Short: "List the cluster's connections (every page); records the agent cannot read are named on stderr",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Limit < 0 {
				return usagef("--limit must be 0 (the agent's page size) or more")
			}
			return a.withSession(cmd, g, func(s *session) error {
				l, err := controlplane.List(s.ctx, s.cp, o)
				if err != nil {
					return err
				}
				// Pages come in name order; sorting again keeps the table ordered whatever the agent.
				sort.SliceStable(l.Items, func(i, j int) bool { return l.Items[i].Spec.Name < l.Items[j].Spec.Name })
				if err := s.out.connections(l.Items); err != nil {
					return err
				}
				return unreadable(l.Errors)
			})
		},
	}
	cmd.Flags().StringVar(&o.Namespace, "kube-namespace", "", "only connections rendering into this namespace (filtered by the agent)")
	cmd.Flags().IntVar(&o.Limit, "limit", 0, fmt.Sprintf("connections per page (each page is one query; every page is printed); "+
		"0: the agent's default, %d; the agent caps it at %d", protocol.DefaultPageSize, protocol.MaxPageSize))
	return cmd
}

// unreadable reports the records the agent could not read, after the list:
// the list on stdout is complete otherwise, and exit code 1 tells a script
// that it is missing something.
func unreadable(errs []protocol.RecordError) error {
	if len(errs) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d connection record(s) could not be read; the list above leaves them out:", len(errs))
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  %s: %s: %s", e.ObjectID, e.Reason, e.Message)
	}
	return failedf("%s", b.String())
}
