// Package natsbus is the NATS wiring shared by the agent and the development
// control plane: how an agent connects (its own inbox prefix, reconnecting
// forever), and the one definition of the request and status streams and of
// each agent's durable consumer, so that the server that creates them and the
// agent that reads them cannot drift apart.
package natsbus
