// Package imagepack builds the project's container images without Docker or
// a registry, as the Dockerfiles would: static Go binaries on the files and
// config of the Dockerfiles' distroless base (declared in base.go, held to
// the Dockerfiles by a unit test), written as docker-archive tarballs that
// `ctr images import`, `docker load` and `kind load image-archive` accept.
package imagepack
