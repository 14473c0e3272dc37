// Package devserver runs the development control plane: an embedded NATS
// server with JetStream, the request and status streams, one durable
// consumer per cluster, an admin user for scctl and, per cluster, a user
// confined to that cluster's subjects. `scctl server` and every NATS test
// use it; production control planes apply the same streams and permissions
// to their own NATS deployment (docs/nats-permissions.md).
package devserver
