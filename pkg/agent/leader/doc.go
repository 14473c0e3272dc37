// Package leader runs the agent's single-writer work (intake, launcher,
// drift, status events, heartbeat) on exactly one replica at a time, elected
// through the Lease sc-agent in sc-system. Replicas that do not lead keep
// serving queries and probes; only the function passed to Run is guarded.
package leader
