package cli

import (
	"bufio"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// session is one command's connection to the control plane, bounded by --timeout.
type session struct {
	cp      ControlPlane
	ctx     context.Context
	out     printer
	globals *globals
}

// withSession dials, runs fn and closes, all within --timeout.
func (a *App) withSession(cmd *cobra.Command, g *globals, fn func(s *session) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	cp, err := a.dial(ctx, g)
	if err != nil {
		return err
	}
	defer cp.Close()
	return fn(&session{cp: cp, ctx: ctx, out: printer{w: a.Stdout, format: g.output}, globals: g})
}

func (a *App) createCommand(g *globals, update bool) *cobra.Command {
	var f specFlags
	var noWait bool
	verb, short := "create", "Create a connection"
	if update {
		verb, short = "update", "Update a connection; flags left out keep their stored values"
	}
	cmd := &cobra.Command{
		Use:   verb + " <target> --connection NAME (--secret ... | --workload-identity ... | --service-principal ... | --keyvault-csi ...) --target-id ID",
		Short: short,
		Example: "  scctl connection " + verb + " storage-blob --cluster c1 --connection mystorage --kube-namespace team-a \\\n" +
			"    --target-id /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<account> \\\n" +
			"    --secret connection-string=@conn.txt \\\n" +
			"    --workload deployment/app,container=web --workload cronjob/nightly --binding-mode env",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			g.features = f.requiredFeatures()
			if !update {
				spec, creds, err := f.build(args[0], nil)
				if err != nil {
					return err
				}
				return a.withSession(cmd, g, func(s *session) error {
					id, err := s.cp.Create(s.ctx, spec, creds)
					return a.follow(s, spec.Name, id, err, noWait)
				})
			}
			if f.name == "" {
				return usagef("--connection is required")
			}
			return a.withSession(cmd, g, func(s *session) error {
				var current protocol.ConnectionView
				if err := s.cp.Query(s.ctx, protocol.Query{Header: protocol.NewHeader(protocol.KindQuery),
					Verb: protocol.VerbShow, Connection: f.name}, &current); err != nil {
					return err
				}
				spec, creds, err := f.build(args[0], &current.Spec)
				if err != nil {
					return err
				}
				id, err := s.cp.Update(s.ctx, spec, creds)
				return a.follow(s, spec.Name, id, err, noWait)
			})
		},
	}
	f.register(cmd.Flags())
	if update {
		f.binding.registerUnbind(cmd.Flags())
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the request is sent; follow with scctl connection wait")
	return cmd
}

// follow waits for a sent request's outcome, printing progress on stderr.
func (a *App) follow(s *session, name, requestID string, sendErr error, noWait bool) error {
	if sendErr != nil {
		return sendErr
	}
	if noWait {
		return s.out.sent(sentRequest{Connection: name, RequestID: requestID}, s.globals.cluster)
	}
	return a.await(s, name, requestID)
}

func (a *App) await(s *session, name, requestID string) error {
	// Only this request's events are progress; older retained events of the
	// connection are history, and the terminal one is printed as the outcome.
	progress := func(ev protocol.StatusEvent) {
		if s.globals.output == outputTable && ev.RequestID == requestID &&
			ev.Phase != connection.PhaseSucceeded && ev.Phase != connection.PhaseFailed && ev.Phase != connection.PhaseDeleted {
			fmt.Fprintf(a.Stderr, "%s %s\n", ev.Time.UTC().Format("15:04:05"), sentence(ev))
		}
	}
	ev, err := s.cp.Wait(s.ctx, name, requestID, progress)
	if err != nil {
		return err
	}
	if err := s.out.outcome(ev); err != nil {
		return err
	}
	if ev.Phase == connection.PhaseFailed {
		return failedf("connection %q failed: %s (details: kubectl -n sc-system logs job/sc-job)", name, orDash(ev.Reason))
	}
	return nil
}

func (a *App) deleteCommand(g *globals) *cobra.Command {
	var name string
	var deleteResources, yes, noWait bool
	cmd := &cobra.Command{
		Use:   "delete --connection NAME [--delete-resources] [--yes]",
		Short: "Delete a connection; rendered Secrets/ServiceAccounts are kept unless --delete-resources",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkName(name); err != nil {
				return err
			}
			if !yes {
				if !a.StdinIsTerminal() {
					return usagef("--yes is required to delete without a terminal to confirm on")
				}
				if !a.confirm(fmt.Sprintf("Delete connection %q on cluster %q%s? [y/N] ", name, g.cluster,
					map[bool]string{true: " and its rendered objects", false: " (rendered objects are kept)"}[deleteResources])) {
					return failedf("not deleted")
				}
			}
			return a.withSession(cmd, g, func(s *session) error {
				id, err := s.cp.Delete(s.ctx, name, deleteResources)
				return a.follow(s, name, id, err, noWait)
			})
		},
	}
	cmd.Flags().StringVar(&name, "connection", "", "connection name (required)")
	cmd.Flags().BoolVar(&deleteResources, "delete-resources", false, "also delete the rendered Secret/ServiceAccount")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the request is sent")
	return cmd
}

func (a *App) confirm(prompt string) bool {
	fmt.Fprint(a.Stderr, prompt)
	line, _ := bufio.NewReader(a.Stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func checkName(name string) error {
	if name == "" {
		return usagef("--connection is required")
	}
	if err := connection.ValidateName(name); err != nil {
		return err
	}
	return nil
}

func newQuery(verb protocol.Verb, name, namespace string) protocol.Query {
	return protocol.Query{Header: protocol.NewHeader(protocol.KindQuery), Verb: verb, Connection: name, Namespace: namespace}
}

// nameQueryCommand is a query about one connection: show, list-configuration, validate.
func (a *App) nameQueryCommand(g *globals, use, short string, run func(s *session, name string) error) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use: use + " --connection NAME", Short: short,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkName(name); err != nil {
				return err
			}
			return a.withSession(cmd, g, func(s *session) error { return run(s, name) })
		},
	}
	cmd.Flags().StringVar(&name, "connection", "", "connection name (required)")
	return cmd
}

func (a *App) showCommand(g *globals) *cobra.Command {
	return a.nameQueryCommand(g, "show", "Show a connection and its status", func(s *session, name string) error {
		var v protocol.ConnectionView
		if err := s.cp.Query(s.ctx, newQuery(protocol.VerbShow, name, ""), &v); err != nil {
			return err
		}
		return s.out.connection(v)
	})
}

func (a *App) listConfigurationCommand(g *globals) *cobra.Command {
	return a.nameQueryCommand(g, "list-configuration",
		"List the keys rendered for a connection; credential values are never shown",
		func(s *session, name string) error {
			var items []protocol.ConfigurationItem
			if err := s.cp.Query(s.ctx, newQuery(protocol.VerbListConfiguration, name, ""), &items); err != nil {
				return err
			}
			return s.out.configuration(items)
		})
}

func (a *App) validateCommand(g *globals) *cobra.Command {
	return a.nameQueryCommand(g, "validate",
		"Check a connection's objects in the cluster; exit code 1 if a check fails",
		func(s *session, name string) error {
			var r protocol.ValidateResult
			if err := s.cp.Query(s.ctx, newQuery(protocol.VerbValidate, name, ""), &r); err != nil {
				return err
			}
			if err := s.out.validation(r); err != nil {
				return err
			}
			if !r.Valid {
				return failedf("connection %q is not valid", name)
			}
			return nil
		})
}

func (a *App) listSupportTypesCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list-support-types",
		Short: "List target types with their auth and client types (no cluster needed)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(_ *cobra.Command, _ []string) error {
			return printer{w: a.Stdout, format: g.output}.supportTypes(catalog.SupportTable())
		},
	}
}

func (a *App) waitCommand(g *globals) *cobra.Command {
	var name, requestID string
	cmd := &cobra.Command{
		Use:   "wait --connection NAME [--request-id ID]",
		Short: "Wait until a connection's request reaches Succeeded, Failed or Deleted",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkName(name); err != nil {
				return err
			}
			return a.withSession(cmd, g, func(s *session) error {
				id := requestID
				if id == "" {
					// The latest request the agent stored; a deleted
					// connection has none, so name the request then.
					var v protocol.ConnectionView
					if err := s.cp.Query(s.ctx, newQuery(protocol.VerbShow, name, ""), &v); err != nil {
						return err
					}
					if id = v.Status.LastRequestID; id == "" {
						return failedf("connection %q has no request to wait for; pass --request-id", name)
					}
				}
				return a.await(s, name, id)
			})
		},
	}
	cmd.Flags().StringVar(&name, "connection", "", "connection name (required)")
	cmd.Flags().StringVar(&requestID, "request-id", "", "the request to wait for (printed by --no-wait); default: the connection's latest")
	return cmd
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
