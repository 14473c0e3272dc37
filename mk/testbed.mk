# Local Kubernetes test bed (docs/testbed.md): thin targets over the testbed
# and imagepack commands. Progress goes to stderr, one line per step.
GO ?= go
TESTBED ?= $(GO) run ./e2e/cmd/testbed
# State directory of `make cluster`; outside the repository on purpose.
SC_TESTBED_DIR ?= /var/tmp/sc-testbed
export SC_TESTBED_DIR

.PHONY: kube-binaries cluster cluster-api cluster-down cluster-status images load-images

# Build kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy and etcd v1.34.4 from the Go module proxy into
# $${XDG_CACHE_HOME:-~/.cache}/sc-extension/kube-v1.34.4/bin (skipped when fresh).
kube-binaries:
	@$(TESTBED) kube-binaries

# Full one-node cluster (containerd, kubelet, kube-proxy, scheduler): pods run.
# Prints the kubeconfig path on stdout. Needs root.
cluster: kube-binaries host-ca-certificates
	@$(TESTBED) up -mode full

# API-only cluster (etcd, kube-apiserver, kube-controller-manager): seconds.
cluster-api: kube-binaries
	@$(TESTBED) up -mode api

# Stop whatever `make cluster[-api]` started and clean the host; safe to run
# after a crash and when nothing runs.
cluster-down:
	@$(TESTBED) down

cluster-status:
	@$(TESTBED) status

# Image tarballs (agent, job, scctl, pause, probe) in _output/images.
# The images carry the distroless base's CA bundle, taken from Debian's
# ca-certificates package.
images: host-ca-certificates
	@$(GO) run ./e2e/cmd/imagepack

.PHONY: host-ca-certificates
host-ca-certificates:
	@[ -s /etc/ssl/certs/ca-certificates.crt ] || { echo ">> apt-get install ca-certificates (the images' CA bundle)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates >/dev/null; }

# Re-import rebuilt images into the running cluster's containerd.
load-images: images
	@$(TESTBED) load-images
