// Package launcher keeps at most one Job sc-job in the agent's namespace
// while connection work is pending. It starts sc-job when a record needs
// work and none runs, leaves a failed sc-job in place for `kubectl logs`
// until new work arrives or keepFailedFor has passed, and then replaces it.
// sc-job itself deletes its Job when it succeeds.
package launcher
