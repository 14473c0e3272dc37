package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleet"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// addedCluster is what `scctl cluster add -o json|yaml` prints.
type addedCluster struct {
	Cluster    string `json:"cluster"`
	User       string `json:"user"`
	Consumer   string `json:"consumer"`
	SecretFile string `json:"secretFile,omitempty"`
	Helm       string `json:"helm"`
}

func (a *App) clusterAddCommand(g *globals, cf *clusterFlags) *cobra.Command {
	var secretFile, agentURL string
	cmd := &cobra.Command{
		Use:   "add ID [--secret-file FILE|-] [--agent-url URL]",
		Short: "Create a cluster's request consumer and issue its NATS credentials, while the servers run",
		Long: "add creates the cluster's durable consumer on the request stream and issues it a NATS user (a JWT\n" +
			"signed by the keystore's account signing key, confined to the cluster's subjects), written as the\n" +
			"Secret the chart reads (nats.credentialsFormat=creds). No server is restarted or reconfigured.",
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
			v, manifest, err := addCluster(ctx, g, k, id, secretFile, serverForPods(agentURL, g.server))
			if err != nil {
				return err
			}
			out := a.Stdout
			if secretFile == "-" {
				if _, err := a.Stdout.Write(manifest); err != nil {
					return err
				}
				out = a.Stderr // the manifest alone on stdout, for kubectl apply -f -
			}
			return printer{w: out, format: g.output}.print(v, func(w io.Writer) { printAdded(w, v) })
		},
	}
	cmd.Flags().StringVar(&secretFile, "secret-file", "",
		"write the cluster's Secret manifest here ('-': stdout); default <keystore>/ID-nats-secret.yaml")
	cmd.Flags().StringVar(&agentURL, "agent-url", "", "NATS URL(s) the cluster's agent dials, for the printed helm command (default --server)")
	return cmd
}

// addCluster runs fleet.Add and writes the cluster's Secret manifest.
func addCluster(ctx context.Context, g *globals, k *fleetauth.Keystore, id, secretFile, agentURL string) (addedCluster, []byte, error) {
	nc, err := dialNATS(ctx, g, k, false)
	if err != nil {
		return addedCluster{}, nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return addedCluster{}, nil, fmt.Errorf("jetstream: %w", err)
	}
	creds, err := fleet.Add(ctx, js, k, id, 0)
	if errors.Is(err, fleetauth.ErrIssued) {
		return addedCluster{}, nil, failedf("cluster %s already has credentials in keystore %s; "+
			"scctl cluster remove %s revokes them before new ones can be issued", id, k.Dir(), id)
	}
	if err != nil {
		return addedCluster{}, nil, err
	}
	manifest, err := devserver.CredsSecretManifest(creds)
	if err != nil {
		return addedCluster{}, nil, err
	}
	pub, err := k.UserPublicKey(id)
	if err != nil {
		return addedCluster{}, nil, err
	}
	v := addedCluster{Cluster: id, User: pub, Consumer: protocol.ConsumerName(id),
		Helm: fmt.Sprintf("helm install sc-extension ./chart -n sc-system --set cluster.id=%s --set nats.url=%s "+
			"--set nats.credentialsSecret=%s --set nats.credentialsFormat=creds", id, agentURL, devserver.SecretName)}
	if secretFile != "-" {
		if secretFile == "" {
			secretFile = devserver.KeystoreSecretManifestPath(k.Dir(), id)
		}
		if err := writeOwnerOnly(secretFile, manifest); err != nil {
			return addedCluster{}, nil, fmt.Errorf("write the Secret manifest (the credentials were issued; "+
				"scctl cluster remove %s and add it again): %w", id, err)
		}
		v.SecretFile = secretFile
	}
	return v, manifest, nil
}

func printAdded(w io.Writer, v addedCluster) {
	fmt.Fprintf(w, "cluster %s added: consumer %s on %s, NATS user %s\n", v.Cluster, v.Consumer, protocol.RequestStream, v.User)
	if v.SecretFile != "" {
		fmt.Fprintf(w, "  credentials:  %s (Secret %s, key creds)\n", v.SecretFile, devserver.SecretName)
		fmt.Fprintf(w, "  kubectl create namespace sc-system\n")
		fmt.Fprintf(w, "  kubectl apply -n sc-system -f %s\n", v.SecretFile)
	} else {
		fmt.Fprintf(w, "  kubectl create namespace sc-system\n")
		fmt.Fprintf(w, "  (the Secret manifest went to stdout: kubectl apply -n sc-system -f -)\n")
	}
	fmt.Fprintf(w, "  %s\n", v.Helm)
}

// writeOwnerOnly writes data, a Secret holding a seed, to path readable by
// its owner only, whatever mode a file already there had: the mode is set
// before a byte is written.
func writeOwnerOnly(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
