// Package health serves the agent's probe and metrics endpoints: /healthz
// (the process is alive), /readyz (every registered readiness check passes)
// and /metrics (the agent's Prometheus registry). It also owns that registry,
// so every metric the agent exports is declared in one place.
package health
