# make release VERSION=vX.Y.Z: the chart package, image tarballs, binaries,
# images.txt (digests) and SHA256SUMS in _output/release/<version>/
# (docs/releasing.md). Refuses a dirty tree unless ALLOW_DIRTY=1.
.PHONY: release
release: tools host-ca-certificates
	@if [ "$(origin VERSION)" = file ]; then \
	  echo "make release needs an explicit VERSION=vX.Y.Z (not git describe's $(VERSION))" >&2; exit 2; fi
	$(GO) run ./internal/cmd/release -version '$(VERSION)' -helm $(BIN)/helm $(if $(filter 1 true yes,$(ALLOW_DIRTY)),-allow-dirty)
