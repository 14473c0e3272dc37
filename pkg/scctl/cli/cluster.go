package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// keystoreEnv backs --keystore of `scctl cluster`.
const keystoreEnv = "SCCTL_KEYSTORE"

// clusterFlags are `scctl cluster`'s own flags.
type clusterFlags struct {
	keystore string
}

// clusterCommand is `scctl cluster add|remove|list`: the clusters a
// control plane serves, managed while its servers run (docs/scctl.md).
func (a *App) clusterCommand(g *globals) *cobra.Command {
	cf := &clusterFlags{}
	cmd := groupCommand("cluster", "Add, remove and list the clusters a control plane serves")
	cmd.PersistentFlags().StringVar(&cf.keystore, "keystore", "",
		"fleetauth keystore directory of a control plane in JWT mode (env SCCTL_KEYSTORE); `scctl server --auth jwt` prints it")
	cmd.AddCommand(a.clusterAddCommand(g, cf), a.clusterRemoveCommand(g, cf), a.clusterListCommand(g, cf),
		a.clusterServerConfigCommand(cf))
	return cmd
}

// keystoreDir is --keystore, else SCCTL_KEYSTORE.
func (a *App) keystoreDir(cf *clusterFlags) string {
	if cf.keystore != "" {
		return cf.keystore
	}
	return a.Getenv(keystoreEnv)
}

// openKeystore opens the keystore add and remove need; it must exist
// already (scctl server --auth jwt creates it), so a mistyped path is an
// error rather than a new operator nobody's servers trust.
func (a *App) openKeystore(cf *clusterFlags) (*fleetauth.Keystore, error) {
	dir := a.keystoreDir(cf)
	if dir == "" {
		return nil, usagef("--keystore is required (or set %s): the control plane's JWT keystore", keystoreEnv)
	}
	if err := fleetauth.Complete(dir); err != nil {
		return nil, failedf("%v (start the control plane with scctl server --auth jwt, or point --keystore at its keystore)", err)
	}
	k, err := fleetauth.Open(dir, devserver.ClusterPermissions)
	if err != nil {
		return nil, fmt.Errorf("keystore %s: %w", dir, err)
	}
	return k, nil
}

// clusterArg checks the one positional argument, a cluster id.
func clusterArg(args []string) (string, error) {
	if len(args) != 1 {
		return "", usagef("needs exactly one cluster id, got %d arguments", len(args))
	}
	if protocol.ValidateCluster(args[0]) != nil {
		return "", usagef("cluster %q must be lowercase letters, digits and '-', 1 to 63 characters", args[0])
	}
	return args[0], nil
}

// dialNATS connects to --server as the global flags say or, without
// credentials among them, as the keystore's admin (sys: its system user).
// A server that cannot be reached is controlplane.ErrServerUnreachable
// (exit 3), as for every other command.
func dialNATS(ctx context.Context, g *globals, k *fleetauth.Keystore, sys bool) (*nats.Conn, error) {
	user, password, creds := g.user, g.password, g.creds
	switch {
	case sys:
		user, password, creds = "", "", k.SysCredsFile()
	case user == "" && creds == "" && k != nil:
		creds = k.AdminCredsFile()
	}
	opts, err := natsbus.ClientOptions(user, password, creds,
		natsbus.TLSFiles{CAFile: g.tlsCA, CertFile: g.tlsCert, KeyFile: g.tlsKey})
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.Name("scctl-cluster"), nats.Timeout(min(g.timeout, maxQueryTimeout)))
	nc, err := nats.Connect(g.server, opts...)
	switch {
	case errors.Is(err, nats.ErrNoServers):
		return nil, fmt.Errorf("server %s: %w: %w", redactURL(g.server), controlplane.ErrServerUnreachable, err)
	case err != nil:
		return nil, fmt.Errorf("server %s: %w", redactURL(g.server), err)
	}
	// A connect does not wait for the server's verdict on the
	// credentials; a round trip does.
	if err := nc.FlushWithContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("server %s: %w", redactURL(g.server), err)
	}
	return nc, nil
}

// serverForPods is the URL list pods are told to dial: --agent-url, else
// --server without any credentials embedded in it.
func serverForPods(agentURL, server string) string {
	if agentURL != "" {
		return agentURL
	}
	parts := strings.Split(server, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			u.User = nil
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
