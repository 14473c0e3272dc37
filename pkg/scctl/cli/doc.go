// Package cli is scctl's command tree: it parses and validates the command
// line, turns flags into a connection.Spec plus sealed-to-be credentials,
// talks to the control plane through pkg/scctl/controlplane, prints results as
// table, JSON or YAML, and maps every outcome to scctl's exit codes
// (0 success, 1 operation failed, 2 usage error, 3 agent not reachable).
// scctl/main.go only wires it to the process.
package cli
