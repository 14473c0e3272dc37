package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// ControlPlane is what scctl needs of pkg/scctl/controlplane's *Client; an
// interface so the command tree can be wired (and tested) without a server.
type ControlPlane interface {
	Create(ctx context.Context, spec connection.Spec, creds connection.Credentials) (string, error)
	Update(ctx context.Context, spec connection.Spec, creds connection.Credentials) (string, error)
	Delete(ctx context.Context, name string, deleteResources bool) (string, error)
	Wait(ctx context.Context, name, requestID string, progress func(protocol.StatusEvent)) (protocol.StatusEvent, error)
	Query(ctx context.Context, q protocol.Query, out any) error
	// LatestHeartbeat is the agent's last heartbeat, from the status stream.
	LatestHeartbeat(ctx context.Context) (protocol.Heartbeat, error)
	Close()
}

// DialOptions are the global connection flags.
type DialOptions struct {
	URL, User, Password, CredsFile, Cluster string
	Timeout                                 time.Duration
	// TLS is --tls-ca, --tls-cert and --tls-key.
	TLS natsbus.TLSFiles
}

// ServerOptions are `scctl server`'s flags.
type ServerOptions struct {
	Listen     string // host:port
	StoreDir   string
	Clusters   []string
	WriteCreds string // directory; "" to skip
	// TLS is the server's --tls-cert, --tls-key and --tls-ca (the CA
	// that signs client certificates; set, the server requires one).
	TLS devserver.TLSOptions
	// Auth and Cluster are the flags of server_auth.go and server_cluster.go.
	Auth    devserver.AuthOptions
	Cluster devserver.ClusterOptions
}

// App is scctl with its process dependencies injected; nil fields get the
// production values (the process's stdio, pkg/scctl/controlplane, pkg/scctl/devserver).
type App struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	Getenv         func(string) string
	// StdinIsTerminal decides whether delete may ask for confirmation.
	StdinIsTerminal func() bool
	// Dial connects to the control plane.
	Dial func(ctx context.Context, o DialOptions) (ControlPlane, error)
	// Serve runs the development control plane until ctx ends (scctl server).
	Serve func(ctx context.Context, o ServerOptions, out io.Writer) error
	// Unreachable reports whether err means the agent did not answer
	// (controlplane.ErrAgentUnreachable): exit code 3.
	Unreachable func(error) bool
	// ServerUnreachable reports whether err means the control plane's NATS
	// server itself could not be reached
	// (controlplane.ErrServerUnreachable): exit code 3 too.
	ServerUnreachable func(error) bool
}

func (a *App) unreachable(err error) bool { return a.Unreachable != nil && a.Unreachable(err) }

func (a *App) serverUnreachable(err error) bool {
	return a.ServerUnreachable != nil && a.ServerUnreachable(err)
}

// Run executes one scctl command line and returns the process exit code.
// Errors are printed as sentences on stderr; never a stack trace, and the
// usage text only on request (--help).
func (a *App) Run(ctx context.Context, args []string) int {
	a.defaults()
	g := &globals{}
	root := a.rootCommand(g)
	root.SetArgs(args)
	root.SetOut(a.Stdout)
	root.SetErr(a.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	code := a.exitCode(err)
	fmt.Fprintf(a.Stderr, "scctl: %s\n", a.message(err, g))
	if code == ExitUsage && errors.Is(err, ErrUsage) && cmd != nil {
		fmt.Fprintf(a.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

func (a *App) defaults() {
	if a.Stdout == nil {
		a.Stdout = os.Stdout
	}
	if a.Stderr == nil {
		a.Stderr = os.Stderr
	}
	if a.Stdin == nil {
		a.Stdin = os.Stdin
	}
	if a.Getenv == nil {
		a.Getenv = os.Getenv
	}
	if a.StdinIsTerminal == nil {
		a.StdinIsTerminal = func() bool { return false }
	}
	if a.Dial == nil {
		a.Dial = dialControlPlane
	}
	if a.Unreachable == nil {
		a.Unreachable = isUnreachable
	}
	if a.ServerUnreachable == nil {
		a.ServerUnreachable = isServerUnreachable
	}
	if a.Serve == nil {
		a.Serve = serveDev
	}
}

// usageArgs wraps a cobra positional-argument check so that its failure is a
// usage error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usagef("%v", err)
		}
		return nil
	}
}

// groupCommand is a command that only holds subcommands: called bare or with
// an unknown subcommand it is a usage error, not a silent help screen.
func groupCommand(use, short string, aliases ...string) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Aliases: aliases,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return usagef("%s needs a subcommand", cmd.CommandPath())
		},
	}
}
