package cli

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// bindingFlags are create's and update's workload binding flags.
type bindingFlags struct {
	workloads []string
	mode      string
	noRestart bool
	unbind    bool
}

// bindingFlagNames are the flags that set spec.binding (--unbind clears it).
var bindingFlagNames = []string{"workload", "binding-mode", "no-restart"}

func (b *bindingFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&b.workloads, "workload", nil,
		"bind a workload of the connection's namespace: KIND/NAME[,container=C]... with KIND one of "+kindFlagValues()+
			"; no container means every container (repeatable)")
	fs.StringVar(&b.mode, "binding-mode", "",
		"how the bound workloads get the configuration: env (one variable per key, the default) or volume "+
			"(files under $SERVICE_BINDING_ROOT/<id>)")
	fs.BoolVar(&b.noRestart, "no-restart", false, "do not restart the bound workloads when the rendered Secret changes")
}

// registerUnbind adds update's --unbind.
func (b *bindingFlags) registerUnbind(fs *pflag.FlagSet) {
	fs.BoolVar(&b.unbind, "unbind", false, "remove the connection's binding: the workloads lose what it added")
}

// givenBindingFlags are the binding flags on the command line, as typed.
func (f *specFlags) givenBindingFlags() []string {
	var given []string
	for _, name := range append(bindingFlagNames, "unbind") {
		if f.changed(name) {
			given = append(given, "--"+name)
		}
	}
	return given
}

// bindingSpec is the spec's binding. Update keeps the stored one unless a
// binding flag is given; then the flags replace it as a whole, as
// --customized-keys replaces the stored renames, so what the command line
// says is the whole binding.
func (f *specFlags) bindingSpec(base *connection.Spec) (*connection.Binding, error) {
	given := f.givenBindingFlags()
	if f.binding.unbind {
		if len(given) > 1 {
			return nil, usagef("--unbind removes the binding; it does not go with %s", strings.Join(given[:len(given)-1], ", "))
		}
		return nil, nil
	}
	if len(given) == 0 || (len(given) == 1 && given[0] == "--unbind") {
		if base != nil {
			return base.Binding, nil
		}
		return nil, nil
	}
	if !f.changed("workload") {
		return nil, usagef("%s needs --workload: binding flags give the whole binding (on update they replace the stored one; "+
			"`scctl connection show` lists its workloads)", strings.Join(given, " and "))
	}
	b := &connection.Binding{NoRestart: f.binding.noRestart}
	switch connection.BindingMode(f.binding.mode) {
	case "", connection.BindingEnv, connection.BindingVolume:
		b.Mode = connection.BindingMode(f.binding.mode)
	default:
		return nil, usagef("--binding-mode: %q is not one of %s, %s", f.binding.mode, connection.BindingEnv, connection.BindingVolume)
	}
	for _, v := range f.binding.workloads {
		w, err := parseWorkload(v)
		if err != nil {
			return nil, err
		}
		b.Workloads = append(b.Workloads, w)
	}
	return b, nil
}

// parseWorkload reads KIND/NAME[,container=C]...; the names themselves are
// checked by connection.Validate, which says what Kubernetes allows.
func parseWorkload(v string) (connection.Workload, error) {
	segs := strings.Split(v, ",")
	kind, name, ok := strings.Cut(segs[0], "/")
	if !ok {
		return connection.Workload{}, usagef("--workload %q: expected KIND/NAME[,container=C]..., such as deployment/app", v)
	}
	k, ok := connection.ParseWorkloadKind(kind)
	if !ok {
		return connection.Workload{}, usagef("--workload %q: kind %q is not one of %s", v, kind, kindFlagValues())
	}
	if name == "" {
		return connection.Workload{}, usagef("--workload %q: the workload's name is missing after %q", v, kind+"/")
	}
	w := connection.Workload{Kind: k, Name: name}
	for _, seg := range segs[1:] {
		key, c, ok := strings.Cut(seg, "=")
		switch {
		case !ok || key != "container":
			return connection.Workload{}, usagef("--workload %q: %q is not container=NAME, the only option", v, seg)
		case c == "":
			return connection.Workload{}, usagef("--workload %q: container= needs a container name", v)
		}
		w.Containers = append(w.Containers, c)
	}
	return w, nil
}

// kindFlagValues are the kinds as --workload takes them.
func kindFlagValues() string {
	names := make([]string, len(connection.WorkloadKinds))
	for i, k := range connection.WorkloadKinds {
		names[i] = strings.ToLower(string(k))
	}
	return strings.Join(names, ", ")
}

// requiredFeatures are the agent features the command's flags need
// (checkAgent refuses an agent without them before anything is sent).
func (f *specFlags) requiredFeatures() []string {
	if len(f.givenBindingFlags()) > 0 {
		return []string{protocol.FeatureBinding}
	}
	return nil
}
