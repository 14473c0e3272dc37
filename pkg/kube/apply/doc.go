// Package apply writes rendered objects into target namespaces with
// ownership checks: it never modifies an object sc-extension does not
// manage, skips writes whose data hash already matches, retries conflicts
// from a fresh read and removes shared ServiceAccounts only when unused.
package apply
