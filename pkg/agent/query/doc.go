// Package query answers the control plane's questions about a cluster's
// connections over NATS request/reply: list, show, list-configuration,
// validate and the agent's public key. Every query gets an answer within a
// deadline, so a requester never hangs on a slow or broken agent.
//
// Every replica answers from its own Cache: an informer on the record
// ConfigMaps that holds, per record, only the encoded view, decoded once
// per resourceVersion. list is paged by name (a continue token any replica
// understands) and bounded in bytes; a record that cannot be read is
// reported in its page and never fails the list. validate reads through
// the API server, since what it compares must be current.
package query
