package devserver

import (
	"errors"
	"fmt"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// AuthMode names how clients authenticate.
type AuthMode string

const (
	// AuthPassword: one admin and one confined user per cluster, with
	// passwords, all known when the server starts (the default).
	AuthPassword AuthMode = "password"
	// AuthJWT: NATS decentralized authentication (pkg/scctl/fleetauth):
	// the server trusts an operator, and clusters are added and revoked
	// while it runs (scctl cluster add|remove).
	AuthJWT AuthMode = "jwt"
)

// ErrAuthOptions: the authentication options are not usable.
var ErrAuthOptions = errors.New("devserver authentication")

// AuthOptions chooses how clients authenticate. The zero value is the
// user/password mode.
type AuthOptions struct {
	Mode AuthMode
	// KeystoreDir is the fleetauth keystore of jwt mode; default
	// <StoreDir>/credentials. Nodes of one JetStream cluster share it.
	KeystoreDir string
}

// JWT reports whether the server runs in jwt mode.
func (a AuthOptions) JWT() bool { return a.Mode == AuthJWT }

// Validate checks the mode and that a keystore is only given to jwt mode.
func (a AuthOptions) Validate() error {
	switch a.Mode {
	case "", AuthPassword:
		if a.KeystoreDir != "" {
			return fmt.Errorf("%w: a keystore is only used in %s mode", ErrAuthOptions, AuthJWT)
		}
	case AuthJWT:
	default:
		return fmt.Errorf("%w: mode %q is not %s or %s", ErrAuthOptions, a.Mode, AuthPassword, AuthJWT)
	}
	return nil
}

// loadUsers reads (or creates) the password mode's users. jwt mode keeps
// no passwords: configureAuth lists its clusters from the keystore.
func loadUsers(o Options) (users, error) {
	if o.Auth.JWT() {
		return users{Admin: Credentials{User: AdminUser}, Clusters: map[string]Credentials{}}, nil
	}
	return loadOrCreateUsers(o.StoreDir, o.Clusters, o.AdminPassword)
}

// configureAuth sets the server's users (or trusted operator) in o.
func (s *Server) configureAuth(o *server.Options) error {
	if err := s.opts.Auth.Validate(); err != nil {
		return fmt.Errorf("devserver: %w", err)
	}
	if s.opts.Auth.JWT() {
		return s.configureJWT(o)
	}
	o.Users = s.natsUsers()
	return nil
}

func (s *Server) natsUsers() []*server.User {
	out := []*server.User{{Username: s.users.Admin.User, Password: s.users.Admin.Password}}
	for c, cred := range s.users.Clusters {
		out = append(out, &server.User{Username: cred.User, Password: cred.Password, Permissions: ClusterPermissions(c),
			AllowedConnectionTypes: onlyConnectionType(jwt.ConnectionTypeStandard)})
	}
	return out
}

// connectAdmin dials in process: provisioning needs no network path, and
// so no client certificate, whatever the TLS settings.
func (s *Server) connectAdmin(ns *server.Server) (*nats.Conn, error) {
	auth := nats.UserInfo(s.users.Admin.User, s.users.Admin.Password)
	if s.opts.Auth.JWT() {
		k, err := s.Keystore()
		if err != nil {
			return nil, err
		}
		auth = nats.UserCredentials(k.AdminCredsFile())
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), auth)
	if err != nil {
		return nil, fmt.Errorf("connect as admin: %w", err)
	}
	return nc, nil
}

// onlyConnectionType confines a user to one kind of connection: an agent's
// password must not open a leaf node connection (whose user has wider
// grants) or a websocket, whatever listeners an operator enables.
func onlyConnectionType(t string) map[string]struct{} { return map[string]struct{}{t: {}} }
