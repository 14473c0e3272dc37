package protocol

import (
	"fmt"
	"regexp"
)

// Subject layout. Every subject a cluster may touch starts with
// "sc.v1.<cluster>.", so one NATS permission per cluster confines its
// credentials to its own requests, status and queries (see docs/nats-permissions.md).
const (
	// RequestStream holds connection requests for every cluster; each agent
	// reads it through a durable consumer filtered to its own subject.
	RequestStream = "SC_REQUESTS"
	// StatusStream holds status events and heartbeats for the control plane.
	StatusStream = "SC_STATUS"

	requestSubjects   = "sc.v1.*.requests"
	statusSubjects    = "sc.v1.*.status.>"
	heartbeatSubjects = "sc.v1.*.heartbeat"
)

// RequestStreamSubjects and StatusStreamSubjects are the stream subject filters.
func RequestStreamSubjects() []string { return []string{requestSubjects} }

// StatusStreamSubjects lists the subjects of StatusStream.
func StatusStreamSubjects() []string { return []string{statusSubjects, heartbeatSubjects} }

var clusterRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// ValidateCluster rejects cluster ids that would not make a single NATS
// subject token (no '.', '*', '>' or spaces) or would be ambiguous.
func ValidateCluster(cluster string) error {
	if !clusterRE.MatchString(cluster) {
		return fmt.Errorf("cluster %q: must be lowercase letters, digits and '-', 1 to 63 characters: %w", cluster, ErrInvalidEnvelope)
	}
	return nil
}

// RequestSubject is where the control plane publishes a cluster's requests.
func RequestSubject(cluster string) string { return "sc.v1." + cluster + ".requests" }

// StatusSubject carries status events of one connection (by object id).
func StatusSubject(cluster, id string) string { return "sc.v1." + cluster + ".status." + id }

// StatusSubjectAll matches every status event of a cluster.
func StatusSubjectAll(cluster string) string { return "sc.v1." + cluster + ".status.>" }

// HeartbeatSubject carries the agent's periodic heartbeat.
func HeartbeatSubject(cluster string) string { return "sc.v1." + cluster + ".heartbeat" }

// QuerySubject is the request/reply subject of one query verb.
func QuerySubject(cluster string, v Verb) string { return "sc.v1." + cluster + ".query." + string(v) }

// QuerySubjectAll matches every query of a cluster (the agent subscribes to it).
func QuerySubjectAll(cluster string) string { return "sc.v1." + cluster + ".query.*" }

// InboxPrefix is the reply-inbox prefix a cluster's clients use, so that
// permissions can keep one cluster from reading another's replies.
func InboxPrefix(cluster string) string { return "_INBOX_" + cluster }

// ConsumerName is the durable consumer of a cluster's agent.
func ConsumerName(cluster string) string { return "agent-" + cluster }
