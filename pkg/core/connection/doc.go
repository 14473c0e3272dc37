// Package connection is the domain model of sc-extension: what a connection
// is, what makes one valid, how its Kubernetes object names are derived and
// which lifecycle phase it is in. It imports neither client-go nor NATS so
// that the agent, sc-job and scctl all share one definition of the rules.
package connection
