// Package inspect checks what is actually in the cluster for a connection:
// the validate query's check-by-check report, and the drift test the agent's
// watcher applies to rendered Secrets and ServiceAccounts. It reads only and
// never reports a credential value, only whether its hash matches.
package inspect
