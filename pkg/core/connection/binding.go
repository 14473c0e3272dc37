package connection

import "strings"

// WorkloadKind is a kind of workload a connection can be bound to.
type WorkloadKind string

// The kinds sc-job binds: every kind with a pod template a rolling restart
// reaches (a CronJob's next Jobs pick the change up).
const (
	WorkloadDeployment  WorkloadKind = "Deployment"
	WorkloadStatefulSet WorkloadKind = "StatefulSet"
	WorkloadDaemonSet   WorkloadKind = "DaemonSet"
	WorkloadCronJob     WorkloadKind = "CronJob"
)

// WorkloadKinds lists the bindable kinds in a fixed order.
var WorkloadKinds = []WorkloadKind{WorkloadDeployment, WorkloadStatefulSet, WorkloadDaemonSet, WorkloadCronJob}

// Workload names a workload in the connection's own namespace (the spec's
// Scope): a binding never reaches across namespaces.
type Workload struct {
	Kind WorkloadKind `json:"kind"`
	Name string       `json:"name"`
	// Containers are the containers that get the configuration; empty
	// means every container of the pod template (not init containers).
	Containers []string `json:"containers,omitempty"`
}

// BindingMode is how the configuration reaches the containers.
type BindingMode string

const (
	// BindingEnv: one environment variable per key of the rendered Secret,
	// each a secretKeyRef (the default).
	BindingEnv BindingMode = "env"
	// BindingVolume: the rendered Secret projected as a directory
	// $SERVICE_BINDING_ROOT/<connection id> in the servicebinding.io layout
	// (with its type and provider entries).
	BindingVolume BindingMode = "volume"
)

// DefaultBindingRoot is SERVICE_BINDING_ROOT when a container sets none.
const DefaultBindingRoot = "/bindings"

// Binding says which workloads consume the connection and how. It is part
// of the spec, so the control plane asks for it like any other field; sc-job
// applies it (pkg/kube/bind) after rendering the connection's objects.
type Binding struct {
	Workloads []Workload `json:"workloads"`
	// Mode defaults to BindingEnv.
	Mode BindingMode `json:"mode,omitempty"`
	// NoRestart opts the connection out of rolling restarts of its
	// workloads when the rendered Secret's data changes.
	NoRestart bool `json:"noRestart,omitempty"`
}

// ModeOrDefault is the binding mode, BindingEnv when none was given.
func (b *Binding) ModeOrDefault() BindingMode {
	if b == nil || b.Mode == "" {
		return BindingEnv
	}
	return b.Mode
}

// Bound reports whether b binds the workload of kind and name.
func (b *Binding) Bound(kind WorkloadKind, name string) bool {
	if b == nil {
		return false
	}
	for _, w := range b.Workloads {
		if w.Kind == kind && w.Name == name {
			return true
		}
	}
	return false
}

// Known reports whether k is one of WorkloadKinds (exact spelling).
func (k WorkloadKind) Known() bool {
	for _, known := range WorkloadKinds {
		if k == known {
			return true
		}
	}
	return false
}

// ParseWorkloadKind returns the kind spelled s in any case ("deployment",
// "StatefulSet"), for command lines; ok is false for anything else.
func ParseWorkloadKind(s string) (WorkloadKind, bool) {
	for _, k := range WorkloadKinds {
		if strings.EqualFold(s, string(k)) {
			return k, true
		}
	}
	return "", false
}
