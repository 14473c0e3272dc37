// Package heartbeat publishes the agent's periodic heartbeat, what
// `az k8s-extension show` reports as the extension's statuses: version,
// pod, leadership, readiness, last error and connection count.
package heartbeat
