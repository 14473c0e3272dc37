// Package intake is the agent's request inbox: it reads the cluster's
// durable JetStream consumer one request at a time, opens the sealed
// credentials, validates, hands the change to the store and acks only once
// the store has it. Requests retrying cannot fix are terminated with a
// Failed status event; everything else is redelivered with backoff.
package intake
