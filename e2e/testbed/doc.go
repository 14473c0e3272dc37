// Package testbed runs real Kubernetes control planes and a one-node cluster
// on the local machine without Docker or a container registry, for the
// project's end-to-end tests.
//
// Two shapes exist:
//
//   - api mode: etcd + kube-apiserver + kube-controller-manager on loopback.
//     RunWithAPI starts a private one per test binary (free ports, temp dir)
//     so that packages can run their tests concurrently.
//   - full mode: api mode plus containerd, kubelet, kube-proxy and
//     kube-scheduler, so pods really run. It is started once per machine by
//     `make cluster` (the testbed CLI) and shared by test binaries via Full.
//
// The Kubernetes binaries are built from the Go module proxy by the nested
// kubebin module (see BuildKubeBinaries) and cached outside the repository.
// docs/testbed.md describes the design, timings and troubleshooting.
package testbed
