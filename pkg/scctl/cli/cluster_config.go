package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// clusterServerConfigCommand prints the keystore's trust settings as
// nats-server configuration, for control planes of plain nats-server
// processes: they need the JWTs only, never a seed.
func (a *App) clusterServerConfigCommand(cf *clusterFlags) *cobra.Command {
	resolverDir := "./jwt"
	cmd := &cobra.Command{
		Use:   "server-config [--resolver-dir DIR]",
		Short: "Print the nats-server configuration that trusts the keystore's operator (full account resolver)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			k, err := a.openKeystore(cf)
			if err != nil {
				return err
			}
			text, err := k.ConfigText(resolverDir)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(a.Stdout, text)
			return err
		},
	}
	cmd.Flags().StringVar(&resolverDir, "resolver-dir", resolverDir, "where each server keeps its account JWTs")
	return cmd
}
