// Package query answers the control plane's questions about a cluster's
// connections over NATS request/reply: list, show, list-configuration,
// validate and the agent's public key. Every query gets an answer within a
// deadline, so a requester never hangs on a slow or broken agent.
package query
