package devserver

import (
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
)

// ClusterOptions joins the server to a JetStream cluster. The zero value
// is a single server.
type ClusterOptions struct{}

// configureCluster sets the server's cluster (routes) options in o.
func (s *Server) configureCluster(*server.Options) error { return nil }

// streamConfigs are the streams provision creates.
func (s *Server) streamConfigs() []jetstream.StreamConfig {
	if len(s.opts.Streams) > 0 {
		return s.opts.Streams
	}
	return []jetstream.StreamConfig{natsbus.RequestStreamConfig(), natsbus.StatusStreamConfig()}
}
