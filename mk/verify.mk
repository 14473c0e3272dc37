# make verify: the checks that need no cluster and must pass before tests.
GOLANGCI_LINT_VERSION ?= v2.15.0

.PHONY: verify verify-fmt verify-vet verify-lint verify-mod verify-chart verify-deps lint-tools
verify: verify-fmt verify-vet verify-mod verify-deps verify-chart verify-lint
	@echo ">> make verify: all checks passed"

lint-tools: $(BIN)/golangci-lint
$(BIN)/golangci-lint:
	@mkdir -p $(BIN)
	@echo ">> building golangci-lint $(GOLANGCI_LINT_VERSION) into bin/ (a few minutes, once)"
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

verify-fmt:
	@echo ">> gofmt"
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed (make fmt):"; echo "$$out"; exit 1; fi

verify-vet:
	@echo ">> go vet (all tiers)"
	$(GO) vet -tags integration,e2e ./...

verify-lint: lint-tools
	@echo ">> golangci-lint (.golangci.yml)"
	@# Without the flag a lint of another checkout on the same machine
	@# (its lock is in the temp dir) fails this one outright.
	$(BIN)/golangci-lint run --allow-parallel-runners ./...

verify-mod:
	@echo ">> go mod tidy -diff"
	$(GO) mod tidy -diff

# The shipped binaries must not link test support or test-only modules.
FORBIDDEN_DEPS := internal/testkit|e2e/|helm.sh/helm|sigs.k8s.io/kind|go-containerregistry|stretchr/testify
verify-deps:
	@echo ">> product binaries free of test support"
	@bad=$$($(GO) list -deps ./agent ./job ./scctl | grep -E '$(FORBIDDEN_DEPS)' || true); \
	  if [ -n "$$bad" ]; then echo "product binaries import test support:"; echo "$$bad"; exit 1; fi

# Plain `helm lint chart/` fails on purpose: cluster.id and nats.url have no
# safe default (docs/chart.md); chart/ci/*.yaml are the installs we lint.
verify-chart: tools
	@echo ">> helm lint with each chart/ci/*.yaml, chart README up to date"
	@for f in chart/ci/*.yaml; do echo ">> helm lint chart --values $$f"; $(BIN)/helm lint chart --strict --values "$$f"; done
	$(GO) run ./internal/cmd/chartdoc -check chart
