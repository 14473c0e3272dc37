// Package controlplane is the client scctl uses to talk to a cluster's
// agent through NATS: it seals credentials to the agent's key, publishes
// requests to the request stream, waits for their outcome on the status
// stream and asks the agent queries, failing fast when no agent answers.
package controlplane
