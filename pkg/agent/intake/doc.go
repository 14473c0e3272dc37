// Package intake is the agent's request inbox: it reads the cluster's
// durable JetStream consumer, queues each request behind the earlier
// requests of the same connection (one FIFO per connection, so that one
// connection's trouble never delays another's), opens the sealed
// credentials, validates, hands the change to the store and acks only once
// the store has it. Requests retrying cannot fix are terminated with a
// Failed status event; transient failures are retried in the agent with
// backoff and reported Pending until they clear or the request expires.
package intake
