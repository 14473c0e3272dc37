package cli

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Output formats.
const (
	outputTable = "table"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// globals are the flags every command shares; each falls back to an SCCTL_*
// environment variable when not given on the command line.
type globals struct {
	cluster, server, user, password, creds, output string
	tlsCA, tlsCert, tlsKey                         string
	timeout                                        time.Duration
	// checkAgent is set for `scctl connection ...` commands: after
	// connecting, dial reads the agent's heartbeat once and refuses an
	// incompatible agent or warns about another release (compat.go).
	checkAgent bool
	// features are what the command's request needs the agent to
	// advertise (protocol.FeatureBinding for the binding flags); the same
	// heartbeat read refuses an agent without them.
	features []string
}

// envFor lists the environment variable behind each global flag.
var envFor = map[string]string{
	"cluster":  "SCCTL_CLUSTER",
	"server":   "SCCTL_SERVER",
	"user":     "SCCTL_USER",
	"password": "SCCTL_PASSWORD",
	"creds":    "SCCTL_CREDS",
	"output":   "SCCTL_OUTPUT",
	"timeout":  "SCCTL_TIMEOUT",
	"tls-ca":   "SCCTL_TLS_CA",
	"tls-cert": "SCCTL_TLS_CERT",
	"tls-key":  "SCCTL_TLS_KEY",
}

const defaultServer = "nats://127.0.0.1:4222"

func (a *App) rootCommand(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "scctl",
		Short: "Service connections for Kubernetes clusters running sc-extension",
		Long: "scctl asks a cluster's sc-extension agent, over the control plane's NATS server, to create, update and\n" +
			"delete service connections, and shows them. Exit codes: 0 success, 1 operation failed, 2 usage error,\n" +
			"3 control plane or agent not reachable.",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return usagef("scctl needs a command")
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			g.checkAgent = talksToAgent(cmd)
			return a.resolveGlobals(cmd.Flags(), cmd.Root().PersistentFlags(), g)
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usagef("%v", err) })
	pf := root.PersistentFlags()
	pf.StringVar(&g.cluster, "cluster", "", "cluster id on the control plane (env SCCTL_CLUSTER)")
	pf.StringVar(&g.server, "server", defaultServer, "NATS URL of the control plane (env SCCTL_SERVER)")
	pf.StringVar(&g.user, "user", "", "NATS user (env SCCTL_USER)")
	pf.StringVar(&g.password, "password", "", "NATS password; prefer env SCCTL_PASSWORD over the command line")
	pf.StringVar(&g.creds, "creds", "", "NATS .creds file (env SCCTL_CREDS)")
	pf.StringVar(&g.tlsCA, "tls-ca", "", "CA bundle (PEM) that signed the server's certificate; implies TLS (env SCCTL_TLS_CA)")
	pf.StringVar(&g.tlsCert, "tls-cert", "", "client certificate (PEM) for a server that verifies clients (env SCCTL_TLS_CERT)")
	pf.StringVar(&g.tlsKey, "tls-key", "", "key of --tls-cert (PEM) (env SCCTL_TLS_KEY)")
	pf.StringVarP(&g.output, "output", "o", outputTable, "output format: table, json or yaml (env SCCTL_OUTPUT)")
	pf.DurationVar(&g.timeout, "timeout", 2*time.Minute, "give up after this long, waiting included (env SCCTL_TIMEOUT)")

	conn := groupCommand("connection", "Manage service connections", "conn")
	conn.AddCommand(
		a.createCommand(g, false), a.createCommand(g, true), a.deleteCommand(g),
		a.listCommand(g), a.showCommand(g), a.listConfigurationCommand(g), a.validateCommand(g),
		a.listSupportTypesCommand(g), a.waitCommand(g),
	)
	root.AddCommand(conn, a.serverCommand(g), a.probeCommand(), a.versionCommand(g), a.clusterCommand(g))
	return root
}

// resolveGlobals applies environment fallbacks and checks the values.
// root holds the global flags: `scctl server` has local --tls-* flags of
// its own meaning (the server's side), which SCCTL_TLS_* must not set.
func (a *App) resolveGlobals(fs, root *pflag.FlagSet, g *globals) error {
	for name, env := range envFor {
		f := fs.Lookup(name)
		if f == nil || f.Changed {
			continue
		}
		if strings.HasPrefix(name, "tls-") && f != root.Lookup(name) {
			continue
		}
		if v := a.Getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				return usagef("%s: %v", env, err)
			}
		}
	}
	if !slices.Contains([]string{outputTable, outputJSON, outputYAML}, g.output) {
		return usagef("-o/--output: %q is not one of table, json, yaml", g.output)
	}
	if g.timeout <= 0 {
		return usagef("--timeout: must be positive, got %s", g.timeout)
	}
	if g.creds != "" && (g.user != "" || g.password != "") {
		return usagef("--creds and --user/--password are alternatives; give one")
	}
	if (g.tlsCert == "") != (g.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together (or SCCTL_TLS_CERT and SCCTL_TLS_KEY)")
	}
	return nil
}

// dial connects with the global flags; only commands that talk to a cluster
// call it. For a connection command it also checks the agent's versions
// before anything is sent.
func (a *App) dial(ctx context.Context, g *globals) (ControlPlane, error) {
	if g.cluster == "" {
		return nil, usagef("--cluster is required (or set SCCTL_CLUSTER)")
	}
	if protocol.ValidateCluster(g.cluster) != nil {
		return nil, usagef("--cluster: %q must be lowercase letters, digits and '-', 1 to 63 characters", g.cluster)
	}
	cp, err := a.Dial(ctx, DialOptions{
		URL: g.server, User: g.user, Password: g.password, CredsFile: g.creds,
		Cluster: g.cluster, Timeout: g.timeout,
		TLS: natsbus.TLSFiles{CAFile: g.tlsCA, CertFile: g.tlsCert, KeyFile: g.tlsKey},
	})
	if err != nil || !g.checkAgent {
		return cp, err
	}
	if err := a.checkAgent(ctx, cp, g.cluster, g.features); err != nil {
		cp.Close()
		return nil, err
	}
	return cp, nil
}
