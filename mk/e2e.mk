# End-to-end suite on a real one-node cluster with real pods (docs/testbed.md).
# Reuses a healthy `make cluster`; otherwise starts one and, unless
# KEEP_CLUSTER=1, tears it down again so CI leaves the machine clean.
E2E_TIMEOUT ?= 40m

.PHONY: test-e2e
test-e2e: images tools
	@started=0; \
	if [ -n "$${E2E_KUBECONFIG:-}" ]; then echo ">> e2e on E2E_KUBECONFIG=$$E2E_KUBECONFIG"; \
	elif $(TESTBED) status >/dev/null 2>&1; then echo ">> e2e on the running local cluster"; $(TESTBED) load-images; \
	else $(MAKE) --no-print-directory cluster >/dev/null; started=1; fi; \
	mkdir -p $(OUT); rc=0; $(GO) test -count=1 -timeout $(E2E_TIMEOUT) -tags e2e -v ./e2e/ 2>&1 | tee $(OUT)/e2e.log || rc=$$?; \
	if [ $$started = 1 ] && [ -z "$${KEEP_CLUSTER:-}" ]; then $(MAKE) --no-print-directory cluster-down; fi; \
	exit $$rc

# make bench: the benchmark report on the local cluster (figures as ratios
# against baselines measured in the same run); the table is printed and
# written to _output/bench.md.
.PHONY: bench
bench: images tools
	@$(TESTBED) status >/dev/null 2>&1 && $(TESTBED) load-images || $(MAKE) --no-print-directory cluster >/dev/null
	@mkdir -p $(OUT)
	SC_BENCH_OUT=$(OUT)/bench.md $(GO) test -count=1 -timeout 60m -tags e2e -run '^TestBenchReport$$' -v ./e2e/ | tee $(OUT)/bench.log
