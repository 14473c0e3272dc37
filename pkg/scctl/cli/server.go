package cli

import (
	"net"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func (a *App) serverCommand(g *globals) *cobra.Command {
	var o ServerOptions
	cmd := &cobra.Command{
		Use:   "server [--listen 0.0.0.0:4222] [--store-dir DIR] [--cluster c1 ...] [--write-creds DIR]",
		Short: "Run the development control plane (embedded NATS with JetStream) until SIGTERM",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := net.SplitHostPort(o.Listen); err != nil {
				return usagef("--listen: %v", err)
			}
			for _, c := range o.Clusters {
				if err := protocol.ValidateCluster(c); err != nil {
					return usagef("--cluster: %q must be lowercase letters, digits and '-', 1 to 63 characters", c)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return a.Serve(ctx, o, a.Stdout)
		},
	}
	// --cluster is global for every other command; here it may repeat.
	cmd.Flags().StringVar(&o.Listen, "listen", "0.0.0.0:4222", "host:port; the address must be reachable from the cluster's pods")
	cmd.Flags().StringVar(&o.StoreDir, "store-dir", "", "JetStream storage directory (default: a temporary directory)")
	cmd.Flags().StringArrayVar(&o.Clusters, "cluster", nil, "create a NATS user for this cluster (repeatable)")
	cmd.Flags().StringVar(&o.WriteCreds, "write-creds", "", "write each cluster's NATS credentials into this directory")
	return cmd
}
