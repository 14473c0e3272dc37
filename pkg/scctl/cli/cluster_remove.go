package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleet"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
)

func (a *App) clusterRemoveCommand(g *globals, cf *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Revoke a cluster's NATS credentials and delete its request consumer, while the servers run",
		Long: "remove revokes the cluster's user in the account JWT and pushes the account to the servers through the\n" +
			"system account: the servers close the cluster's connections and refuse new ones. Then it deletes the\n" +
			"cluster's consumer and the requests still waiting for it.",
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := clusterArg(args)
			if err != nil {
				return err
			}
			k, err := a.openKeystore(cf)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			v, err := removeCluster(ctx, g, k, id)
			if err != nil {
				return err
			}
			return printer{w: a.Stdout, format: g.output}.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "cluster %s removed: user %s revoked (its connections are closed and refused), "+
					"consumer %s deleted, %d waiting requests dropped\n", v.Cluster, v.RevokedUser, v.Consumer, v.DroppedRequests)
			})
		},
	}
}

// removeCluster runs fleet.Remove over a system-account connection (for
// the push) and an admin one, then deletes the Secret manifest add wrote.
func removeCluster(ctx context.Context, g *globals, k *fleetauth.Keystore, id string) (fleet.Removed, error) {
	sys, err := dialNATS(ctx, g, k, true)
	if err != nil {
		return fleet.Removed{}, fmt.Errorf("connect as the system account to push the revocation: %w", err)
	}
	defer sys.Close()
	nc, err := dialNATS(ctx, g, k, false)
	if err != nil {
		return fleet.Removed{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fleet.Removed{}, fmt.Errorf("jetstream: %w", err)
	}
	v, err := fleet.Remove(ctx, js, sys, k, id)
	if errors.Is(err, fleetauth.ErrNotIssued) {
		return fleet.Removed{}, failedf("cluster %s has no credentials in keystore %s; nothing to revoke", id, k.Dir())
	}
	if err != nil {
		return fleet.Removed{}, err
	}
	if err := removeIfExists(devserver.KeystoreSecretManifestPath(k.Dir(), id)); err != nil {
		return fleet.Removed{}, err
	}
	return v, nil
}
