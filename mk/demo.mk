# make demo: the product end to end on this machine (scripts/demo.sh).
.PHONY: demo demo-down cluster-kubeconfig

demo:
	@scripts/demo.sh up

demo-down:
	@scripts/demo.sh down

# Prints the kubeconfig of a healthy local full cluster; fails when none runs.
cluster-kubeconfig:
	@out=$$($(TESTBED) status 2>/dev/null) && grep -q '^mode: full' <<<"$$out" && grep -q '^healthy: yes' <<<"$$out" && echo $(SC_TESTBED_DIR)/kubeconfig
