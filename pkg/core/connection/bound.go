package connection

import "slices"

// Reasons of a connection whose objects are rendered but whose binding is
// not finished (sc-job writes them, Pending, with a RetryAfter).
const (
	// ReasonWorkloadNotFound: a workload the binding names does not exist
	// (yet); retried with the transient backoff, so it binds once it appears.
	ReasonWorkloadNotFound = "WorkloadNotFound"
	// ReasonRestartScheduled: the rendered Secret's data changed and the
	// rolling restart of the bound workloads waits until RetryAfter, so that
	// connections changed together restart a workload once, and a workload
	// restarts at most once per restart window.
	ReasonRestartScheduled = "RestartScheduled"
)

// BoundState is a connection's share of its workloads' bindings as sc-job
// last applied it. Every connection bound to a workload contributes its
// share to one server-side apply of that workload, so the share of a
// connection that is not being processed must be known as it was applied,
// not as its spec says now (a spec changed but not rendered yet names keys
// its Secret does not have). A run also unbinds the workloads a changed
// spec no longer names from it.
type BoundState struct {
	Workloads  []Workload  `json:"workloads"`
	Mode       BindingMode `json:"mode,omitempty"`
	SecretName string      `json:"secretName,omitempty"`
	// Keys are the rendered Secret's keys, as env mode exposes them.
	Keys []string `json:"keys,omitempty"`
	// ServiceAccount is set for workload identity.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// RestartToken changes exactly when the rendered Secret's data changes
	// (empty when the connection opted out of restarts). It is derived
	// from the Secret's UID and data hash, never from a value alone, so a
	// reader of the workload learns nothing about the credentials.
	RestartToken string `json:"restartToken,omitempty"`
}

// Binds reports whether s binds the workload of kind and name.
func (s *BoundState) Binds(kind WorkloadKind, name string) bool {
	if s == nil {
		return false
	}
	return slices.ContainsFunc(s.Workloads, func(w Workload) bool { return w.Kind == kind && w.Name == name })
}
