package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// hiddenMarker stands for a credential's value in tables; JSON and YAML keep
// the agent's "" (with credential: true), as Azure's list-configuration does.
const hiddenMarker = "<hidden>"

// printer writes one result in the chosen format; table is the human form,
// json and yaml print the wire object unchanged so scripts see what the
// agent sent.
type printer struct {
	w      io.Writer
	format string
}

func (p printer) print(v any, table func(w io.Writer)) error {
	switch p.format {
	case outputJSON:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	case outputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode YAML: %w", err)
		}
		_, err = p.w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func (p printer) connections(views []protocol.ConnectionView) error {
	if views == nil {
		views = []protocol.ConnectionView{} // JSON [] rather than null
	}
	return p.print(views, func(w io.Writer) {
		fmt.Fprintln(w, "NAME\tNAMESPACE\tTARGET\tAUTH\tCLIENT\tPHASE\tREASON\tGEN\tUPDATED")
		for _, v := range views {
			phase := string(v.Status.Phase)
			if v.Deleting {
				phase += " (deleting)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", v.Spec.Name, v.Spec.Scope, v.Spec.TargetService.Type,
				v.Spec.AuthInfo.AuthType, orDash(string(v.Spec.ClientType)), orDash(phase), orDash(v.Status.Reason),
				v.Generation, timestamp(v.Status.UpdatedAt))
		}
	})
}

func (p printer) connection(v protocol.ConnectionView) error {
	return p.print(v, func(w io.Writer) {
		s := v.Spec
		row := func(k, val string) {
			switch {
			case val == "":
			case k == "": // continuation of a multi-line field
				fmt.Fprintf(w, "\t%s\n", val)
			default:
				fmt.Fprintf(w, "%s:\t%s\n", k, val)
			}
		}
		row("Name", s.Name)
		row("Object ID", v.ObjectID)
		row("Namespace", s.Scope)
		row("Target", string(s.TargetService.Type))
		row("Target ID", s.TargetService.ID)
		row("Auth type", string(s.AuthInfo.AuthType))
		row("Client ID", s.AuthInfo.ClientID)
		row("Tenant ID", s.AuthInfo.TenantID)
		row("Client type", string(s.ClientType))
		row("Generation", fmt.Sprint(v.Generation))
		phase := string(v.Status.Phase)
		if v.Deleting {
			phase += " (deletion pending)"
		}
		row("Phase", phase)
		row("Reason", v.Status.Reason)
		row("Message", v.Status.Message)
		row("Observed generation", fmt.Sprint(v.Status.ObservedGeneration))
		row("Last request", v.Status.LastRequestID)
		row("Updated", timestamp(v.Status.UpdatedAt))
		for i, r := range v.Status.Resources {
			row(label(i, "Resources"), resource(r))
		}
		for i, c := range s.Configurations {
			val := c.Value
			if c.Credential {
				val = hiddenMarker
			}
			row(label(i, "Configurations"), s.RenderedKey(c.Name)+"="+val)
		}
		for i, k := range sortedKeys(s.CustomizedKeys) {
			row(label(i, "Customized keys"), k+" -> "+s.CustomizedKeys[k])
		}
		if b := s.Binding; b != nil {
			row("Binding mode", string(b.ModeOrDefault()))
			for i, wl := range b.Workloads {
				row(label(i, "Bound workloads"), workload(wl))
			}
			restart := "on credential change"
			if b.NoRestart {
				restart = "never (--no-restart)"
			}
			row("Restart", restart)
		}
	})
}

// workload is KIND/NAME with its containers, as --workload takes it
// (kind in Kubernetes spelling).
func workload(w connection.Workload) string {
	out := string(w.Kind) + "/" + w.Name
	if len(w.Containers) > 0 {
		out += " (containers " + strings.Join(w.Containers, ", ") + ")"
	}
	return out
}

// label prints a multi-line field's name on its first line only.
func label(i int, name string) string {
	if i == 0 {
		return name
	}
	return ""
}

func (p printer) configuration(items []protocol.ConfigurationItem) error {
	if items == nil {
		items = []protocol.ConfigurationItem{}
	}
	bound := false
	for _, it := range items {
		bound = bound || len(it.Workloads) > 0
	}
	return p.print(items, func(w io.Writer) {
		if bound {
			fmt.Fprintln(w, "NAME\tVALUE\tBOUND TO")
		} else {
			fmt.Fprintln(w, "NAME\tVALUE")
		}
		for _, it := range items {
			val := it.Value
			if it.Credential {
				val = hiddenMarker
			}
			if !bound {
				fmt.Fprintf(w, "%s\t%s\n", it.Name, val)
				continue
			}
			to := "-"
			if len(it.Workloads) > 0 {
				names := make([]string, len(it.Workloads))
				for i, wl := range it.Workloads {
					names[i] = workload(wl)
				}
				to = strings.Join(names, ", ")
				if it.BindingMode != "" {
					to = string(it.BindingMode) + ": " + to
				}
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", it.Name, val, to)
		}
	})
}

func (p printer) validation(r protocol.ValidateResult) error {
	return p.print(r, func(w io.Writer) {
		fmt.Fprintln(w, "CHECK\tRESULT\tDESCRIPTION")
		for _, c := range r.Checks {
			fmt.Fprintf(w, "%s\t%s\t%s\n", c.Name, c.Result, c.Description)
		}
	})
}

// supportRow is SupportRow with JSON names.
type supportRow struct {
	Target      catalog.TargetType   `json:"target"`
	AuthTypes   []catalog.AuthType   `json:"authTypes"`
	ClientTypes []catalog.ClientType `json:"clientTypes"`
}

func (p printer) supportTypes(rows []catalog.SupportRow) error {
	out := make([]supportRow, len(rows))
	for i, r := range rows {
		out[i] = supportRow{Target: r.Target, AuthTypes: r.AuthTypes, ClientTypes: r.ClientTypes}
	}
	return p.print(out, func(w io.Writer) {
		fmt.Fprintln(w, "TARGET\tAUTH TYPES\tCLIENT TYPES")
		for _, r := range out {
			fmt.Fprintf(w, "%s\t%s\t%s\n", r.Target, joinStrings(r.AuthTypes), joinStrings(r.ClientTypes))
		}
	})
}

// outcome prints the terminal status event of a create, update or delete.
func (p printer) outcome(ev protocol.StatusEvent) error {
	return p.print(ev, func(w io.Writer) {
		fmt.Fprintln(w, sentence(ev))
		for _, r := range ev.Resources {
			fmt.Fprintf(w, "  %s\n", resource(r))
		}
	})
}

// sentRequest is what --no-wait prints.
type sentRequest struct {
	Connection string `json:"connection"`
	RequestID  string `json:"requestId"`
}

func (p printer) sent(r sentRequest, cluster string) error {
	return p.print(r, func(w io.Writer) {
		fmt.Fprintf(w, "request %s sent for connection %q\n", r.RequestID, r.Connection)
		fmt.Fprintf(w, "follow it with: scctl connection wait --cluster %s --connection %s --request-id %s\n",
			cluster, r.Connection, r.RequestID)
	})
}

// sentence describes a status event in one line, for progress and results.
func sentence(ev protocol.StatusEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "connection %q: %s", ev.Connection, ev.Phase)
	if ev.Generation > 0 && ev.Phase != connection.PhaseDeleted {
		fmt.Fprintf(&b, " (generation %d)", ev.Generation)
	}
	if ev.Reason != "" {
		fmt.Fprintf(&b, ", %s", ev.Reason)
	}
	if ev.Message != "" {
		fmt.Fprintf(&b, ": %s", ev.Message)
	}
	return b.String()
}

func resource(r connection.ResourceRef) string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinStrings[T ~string](vs []T) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = string(v)
	}
	return strings.Join(parts, ", ")
}
