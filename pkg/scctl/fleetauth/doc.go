// Package fleetauth issues the NATS operator, account and user JWTs of a
// control plane that serves many clusters (NATS decentralized
// authentication): one operator, the system account, one application
// account ("SC") holding the streams, the control plane's admin user and a
// user per cluster carrying exactly that cluster's permissions. Users are
// signed by the account's signing key, so a cluster is added without any
// server change (the server verifies the chain); removing one revokes its
// user in the account JWT, which is pushed to the servers through the
// system account. Keys and JWTs live in a keystore directory (0700, files
// 0600); docs/nats-permissions.md explains the layout.
package fleetauth
