package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// removedCluster is what `scctl cluster remove -o json|yaml` prints.
type removedCluster struct {
	Cluster         string `json:"cluster"`
	RevokedUser     string `json:"revokedUser"`
	Consumer        string `json:"consumer"`
	DroppedRequests uint64 `json:"droppedRequests"`
}

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

// removeCluster revokes first: whatever fails after, the cluster can no
// longer connect. The keystore forgets the cluster only at the end, so a
// run that failed midway is completed by running it again.
func removeCluster(ctx context.Context, g *globals, k *fleetauth.Keystore, id string) (removedCluster, error) {
	pub, err := k.UserPublicKey(id)
	if errors.Is(err, fleetauth.ErrNotIssued) {
		return removedCluster{}, failedf("cluster %s has no credentials in keystore %s; nothing to revoke", id, k.Dir())
	}
	if err != nil {
		return removedCluster{}, err
	}
	token, err := k.Revoke(id)
	if err != nil {
		return removedCluster{}, err
	}
	sys, err := dialNATS(ctx, g, k, true)
	if err != nil {
		return removedCluster{}, fmt.Errorf("connect as the system account to push the revocation: %w", err)
	}
	err = fleetauth.PushAccount(ctx, sys, token, pub)
	sys.Close()
	if err != nil {
		return removedCluster{}, err
	}

	nc, err := dialNATS(ctx, g, k, false)
	if err != nil {
		return removedCluster{}, err
	}
	defer nc.Close()
	s, err := requestStream(ctx, nc)
	if err != nil {
		return removedCluster{}, err
	}
	v := removedCluster{Cluster: id, RevokedUser: pub, Consumer: protocol.ConsumerName(id)}
	switch err := s.DeleteConsumer(ctx, v.Consumer); {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	case err != nil:
		return removedCluster{}, fmt.Errorf("delete consumer %s: %w", v.Consumer, err)
	}
	// Nobody will read them: the subject's requests would otherwise wait a
	// week (RequestMaxAge) and count against the stream.
	before, err := s.Info(ctx, jetstream.WithSubjectFilter(protocol.RequestSubject(id)))
	if err != nil {
		return removedCluster{}, fmt.Errorf("stream %s: %w", protocol.RequestStream, err)
	}
	v.DroppedRequests = before.State.Subjects[protocol.RequestSubject(id)]
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(protocol.RequestSubject(id))); err != nil {
		return removedCluster{}, fmt.Errorf("purge %s: %w", protocol.RequestSubject(id), err)
	}
	if err := k.Forget(id); err != nil {
		return removedCluster{}, err
	}
	if err := removeIfExists(secretManifestPath(k, id)); err != nil {
		return removedCluster{}, err
	}
	return v, nil
}
