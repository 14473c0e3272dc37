// Package heartbeat publishes the agent's periodic heartbeat, what
// `az k8s-extension show` reports as the extension's statuses: version,
// pod, leadership, readiness, last error and connection count. It also
// names the envelope versions the agent decodes and the record schema it
// writes, which scctl reads to warn about, or refuse, a release mismatch.
package heartbeat
