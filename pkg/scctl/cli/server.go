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
		Use:   "server [--listen 0.0.0.0:4222] [--store-dir DIR] [--cluster c1 ...] [--write-creds DIR] [--tls-cert FILE --tls-key FILE [--tls-ca FILE]]",
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
			if (o.TLS.CertFile == "") != (o.TLS.KeyFile == "") {
				return usagef("--tls-cert and --tls-key go together")
			}
			if o.TLS.ClientCAFile != "" && o.TLS.CertFile == "" {
				return usagef("--tls-ca (verify client certificates) needs --tls-cert and --tls-key")
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
	// The global --tls-* flags are the client's side; here they are the server's.
	cmd.Flags().StringVar(&o.TLS.CertFile, "tls-cert", "", "server certificate (PEM); with --tls-key the server requires TLS (tls:// URLs)")
	cmd.Flags().StringVar(&o.TLS.KeyFile, "tls-key", "", "key of --tls-cert (PEM)")
	cmd.Flags().StringVar(&o.TLS.ClientCAFile, "tls-ca", "", "CA bundle (PEM) that signs client certificates; set, every client must present one")
	addServerAuthFlags(cmd.Flags(), &o.Auth)
	addServerClusterFlags(cmd.Flags(), &o.Cluster)
	return cmd
}
