// Package agentkey keeps the agent's curve (xkey) key pair in the Secret
// sc-agent-key, creating it on first start, so that every replica and every
// restart opens credentials sealed to the same public key.
package agentkey
