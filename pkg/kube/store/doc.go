// Package store keeps connection records in the extension's namespace: one
// ConfigMap per connection holding everything but credential values (the
// commit point of every change), and one companion Secret holding the
// credential values, stamped with the id of the request that wrote them.
// The layout of both is pkg/kube/record's; this package does the reads and
// writes, with optimistic concurrency.
package store
