// Package inspect checks what is actually in the cluster for a connection:
// the validate query's check-by-check report, and the drift test the agent's
// watcher applies to rendered Secrets and ServiceAccounts. An object is
// judged ours by the UID its record holds (NotOurs), labels only for records
// that hold none. It reads only and never reports a credential value, only
// whether its hash matches.
package inspect
