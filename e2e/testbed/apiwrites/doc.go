// Package apiwrites counts writes to Kubernetes objects as the API server
// saw them, for end-to-end tests that must not trust the product's own
// counters or logs.
//
// Two views, both the API server's:
//
//   - Recorder watches chosen resources (record ConfigMaps, rendered Secrets
//     and ServiceAccounts) from the resourceVersion of an initial list, so
//     every write after Start arrives as one ADDED, MODIFIED or DELETED event,
//     with the object as written (its managedFields name the writers) and its
//     resourceVersion (its etcd revision, ordered across all objects).
//     Secrets are kept without their data: a count needs no credential value.
//   - Scrape reads apiserver_request_total from the API server's /metrics;
//     the difference of two scrapes is every request served in between, by
//     verb, resource and code, rejected ones (409 conflicts) included.
//
// A watch event is a write that took effect; a request counted by the
// metric may have been refused. Tests assert on the first and report the
// second.
package apiwrites
