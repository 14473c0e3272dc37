# make fleet-bench: one control plane, FLEET_CLUSTERS simulated clusters (the
# agent's NATS code paths over an in-memory store) and a 3-node JetStream
# cluster of `scctl server` processes on 127.0.0.1: request → final status
# at a steady rate and in a burst, the servers' memory and CPU, and the
# request stream's leader killed (SIGKILL) and restarted mid-run. Not in CI;
# the report is printed and written to _output/fleet-bench.md (docs/bench.md,
# "Fleet"). FLEET_ARGS passes more flags (go run ./internal/cmd/fleetbench -h).
FLEET_CLUSTERS ?= 1000
FLEET_ARGS ?=
.PHONY: fleet-bench
fleet-bench:
	@mkdir -p $(OUT)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(OUT)/fleetbench/ ./internal/cmd/fleetbench ./scctl
	$(OUT)/fleetbench/fleetbench -clusters $(FLEET_CLUSTERS) -scctl $(OUT)/fleetbench/scctl \
	  -out $(OUT)/fleet-bench.md $(FLEET_ARGS) 2>&1 | tee $(OUT)/fleet-bench.log
