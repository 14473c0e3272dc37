// Package chart holds the Go tests of the sc-extension Helm chart in this
// directory: they render the chart with the Helm SDK, validate values against
// values.schema.json, lint it, check every pod against Pod Security
// "restricted" and check the RBAC it grants, for the defaults, variants and
// every configuration in ci/. It has no non-test code; the
// .go files are excluded from the packaged chart by .helmignore.
package chart
