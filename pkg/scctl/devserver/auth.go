package devserver

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// AuthOptions chooses how clients authenticate. The zero value is the
// user/password mode: one admin and one confined user per cluster, all
// known when the server starts.
type AuthOptions struct{}

// configureAuth sets the server's users (or trusted operator) in o.
func (s *Server) configureAuth(o *server.Options) error {
	o.Users = s.natsUsers()
	return nil
}

func (s *Server) natsUsers() []*server.User {
	out := []*server.User{{Username: s.users.Admin.User, Password: s.users.Admin.Password}}
	for c, cred := range s.users.Clusters {
		out = append(out, &server.User{Username: cred.User, Password: cred.Password, Permissions: ClusterPermissions(c)})
	}
	return out
}

// connectAdmin dials in process: provisioning needs no network path, and
// so no client certificate, whatever the TLS settings.
func (s *Server) connectAdmin(ns *server.Server) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.UserInfo(s.users.Admin.User, s.users.Admin.Password))
	if err != nil {
		return nil, fmt.Errorf("connect as admin: %w", err)
	}
	return nc, nil
}
