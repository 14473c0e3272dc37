// Package helmrelease lets a test suite borrow a Helm release somebody else
// installed (the one `make demo` leaves running) and give it back.
//
// The end-to-end suite installs the chart as release sc-extension in
// sc-system with its own values, NATS credentials and records. Before it
// does, Take records what it is about to overwrite: the release's
// user-supplied values (`helm get values`), the NATS credentials Secret those
// values name, and the connection records. At the end Restore puts the
// records and the Secret back and runs `helm upgrade --install` with the
// recorded values, waiting until the release's workloads are Ready.
//
// A release whose values carry the suite's own marker (a pod annotation the
// suite sets) was left by an earlier run: there is nothing to give back.
// Everything is kept in memory only: credential values never touch the disk
// and never appear in errors. If the suite is killed before Restore, `make
// demo` reinstalls the demo the same way (it is idempotent).
package helmrelease
