// Package eso builds and runs External Secrets Operator (ESO) for the
// benchmark that compares sc-extension with it (`make bench`, docs/bench.md).
// ESO is a yardstick, never a dependency of the product.
//
// Build fetches ESO's module from the Go module proxy (`go mod download`),
// builds it in a writable copy (its go.mod has a replace directive, so `go
// install module@version` refuses) and keeps the binary with the module's
// CRDs in the project's cache, so a machine pays for the build (about 8
// minutes on 2 cores) once. Start runs the binary as a process outside the
// cluster with the test cluster's kubeconfig; the objects helpers build the
// ClusterSecretStore of ESO's fake provider and the ExternalSecrets that read
// it, as unstructured objects, so neither ESO's API types nor its
// dependencies reach this module.
package eso
