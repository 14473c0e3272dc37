package devserver

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// ResponseTTL bounds how long an agent may answer a query it received;
// queries time out on the control plane long before.
const ResponseTTL = time.Minute

// ClusterPermissions is everything an agent of cluster needs and nothing
// more (see docs/nats-permissions.md for why each line is there):
//
//   - its own query subjects (subscribe) and one reply per query received
//     (allow_responses), so it cannot answer another cluster's queries;
//   - its own status subjects, one token per connection, and its
//     heartbeat subject (publish), which the status stream captures;
//   - read-only use of its own durable consumer: CONSUMER.INFO and
//     MSG.NEXT for that one name, and acks for its messages. It may not
//     create consumers: a create request can carry a push deliver subject,
//     which the server does not check against the caller's permissions, so
//     a create grant would let a cluster make the server publish on its
//     behalf. The control plane creates the consumer (devserver does);
//   - its own inbox prefix, where pull batches and API replies arrive.
func ClusterPermissions(cluster string) *server.Permissions {
	stream, consumer := protocol.RequestStream, protocol.ConsumerName(cluster)
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			// One token per connection (connection.ObjectID is a DNS-1123
			// label): deeper subjects are never published, so not granted.
			protocol.StatusSubject(cluster, "*"),
			protocol.HeartbeatSubject(cluster),
			fmt.Sprintf("$JS.API.CONSUMER.INFO.%s.%s", stream, consumer),
			fmt.Sprintf("$JS.API.CONSUMER.MSG.NEXT.%s.%s", stream, consumer),
			fmt.Sprintf("$JS.ACK.%s.%s.>", stream, consumer),
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{
			protocol.QuerySubjectAll(cluster),
			protocol.InboxPrefix(cluster) + ".>",
		}},
		Response: &server.ResponsePermission{MaxMsgs: 1, Expires: ResponseTTL},
	}
}

// ConfigBlock renders ClusterPermissions as a nats-server configuration
// user entry, for operators who run their own server. The password is a
// variable reference: real ones never pass through this package's output.
func ConfigBlock(cluster string) string {
	p := ClusterPermissions(cluster)
	var b strings.Builder
	fmt.Fprintf(&b, "{\n  user: %q\n  password: $%s\n  permissions: {\n", UserName(cluster), PasswordVar(cluster))
	list := func(name string, subjects []string) {
		fmt.Fprintf(&b, "    %s: { allow: [\n", name)
		for _, s := range subjects {
			fmt.Fprintf(&b, "      %q\n", s)
		}
		b.WriteString("    ] }\n")
	}
	list("publish", p.Publish.Allow)
	list("subscribe", p.Subscribe.Allow)
	fmt.Fprintf(&b, "    allow_responses: { max: %d, expires: %q }\n  }\n}\n", p.Response.MaxMsgs, p.Response.Expires.String())
	return b.String()
}

// PasswordVar is the environment variable ConfigBlock reads the password
// from (nats-server resolves unquoted $NAME in its configuration).
func PasswordVar(cluster string) string {
	return "AGENT_" + strings.ToUpper(strings.ReplaceAll(cluster, "-", "_")) + "_PASSWORD"
}

// UserName is the NATS user of a cluster's agent.
func UserName(cluster string) string { return "agent-" + cluster }
