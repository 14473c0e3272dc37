// Package catalog is the single source of truth for which configuration keys
// a connection yields: for every target service, auth type and client type it
// says which ordered keys land in the rendered Secret, which of them are
// credentials, and which values can be derived from the target's resource id.
//
// It is pure data plus lookups, with no Kubernetes or NATS imports, so the
// agent, sc-job and scctl all agree on the same table (see table.go).
package catalog
