// Package apply writes rendered objects into target namespaces with
// ownership checks: an existing object is modified or deleted only if its
// UID is one sc-job recorded in a connection record (labels alone never
// adopt, see Owner), writes whose data hash already matches are skipped,
// conflicts are retried from a fresh read, deletes carry the recorded UID
// as a precondition, and shared ServiceAccounts are removed only when unused.
package apply
