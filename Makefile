# sc-extension: every step a fresh machine needs lives here or in mk/*.mk.
# `make demo` runs the product end to end; `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := $(CURDIR)/bin
OUT := $(CURDIR)/_output
export PATH := $(BIN):$(PATH)

# Packages that need no cluster (unit tests, plus integration/ sub-packages
# that start their own private API server through e2e/testbed).
UNIT_PKGS = $$($(GO) list ./... | grep -v '/e2e$$' | grep -v '/e2e/cmd/')

# Fuzz targets run briefly on every `make test`: package:target.
FUZZ_TARGETS ?= $(shell grep -rl --include='*_test.go' '^func Fuzz' pkg | xargs -r grep -H -o '^func Fuzz[A-Za-z0-9_]*' | sed -E 's|/[^/]*_test.go:func |:|' | sort -u)
FUZZTIME ?= 8s

.PHONY: all build test test-unit test-fuzz test-e2e vet fmt bench demo demo-down tools clean
all: build

build:
	$(GO) build ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# helm is the real CLI, built from the Go module proxy into bin/ when missing.
HELM_VERSION ?= v3.19.0
tools: $(BIN)/helm
$(BIN)/helm:
	@mkdir -p $(BIN)
	@echo ">> building helm $(HELM_VERSION) into bin/"
	GOBIN=$(BIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

test: vet test-unit test-fuzz test-e2e
	@echo ">> make test: all stages passed"

test-unit: kube-binaries
	$(GO) test -count=1 -timeout 20m $(UNIT_PKGS)

test-fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=./$${t%%:*}; fn=$${t##*:}; \
	  echo ">> fuzz $$pkg $$fn ($(FUZZTIME))"; \
	  $(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) $$pkg; done

clean:
	rm -rf $(OUT) $(BIN)

-include mk/*.mk
