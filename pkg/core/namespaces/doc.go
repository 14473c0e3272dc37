// Package namespaces is the policy of where connections may render: never
// into the extension's own namespace (it holds every connection's credentials
// and the agent's keys) or a Kubernetes system namespace, never into one the
// operator denied, and only into the watched ones when a watch list is set.
// The agent's intake enforces it before storing a request and sc-job again
// before rendering a stored record, so the rule lives here once. Like the
// rest of pkg/core it imports neither client-go nor NATS.
package namespaces
