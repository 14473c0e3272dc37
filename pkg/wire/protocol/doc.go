// Package protocol is the wire contract between the control plane and the
// agent: versioned JSON envelopes, the NATS subject and stream layout, and the
// sealing of credential values to the agent's curve key. It knows NATS subject
// names but does not import a NATS client, so scctl, the agent and tests can
// all share it.
package protocol
