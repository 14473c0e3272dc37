// Package render turns a stored connection and its credential values into the
// Kubernetes objects sc-job writes into the connection's target namespace. It
// is pure: no API calls, no clock, no randomness, so the same input always
// yields byte-identical objects and the same data hash.
package render
