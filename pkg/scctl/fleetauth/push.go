package fleetauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ClaimsUpdateSubject is where a system account user sends an account
// JWT; every server with a full resolver stores it and applies it (a
// revocation closes the revoked users' connections).
const ClaimsUpdateSubject = "$SYS.REQ.CLAIMS.UPDATE"

// ErrPush: no server took the account JWT.
var ErrPush = errors.New("push account JWT")

// PushAccount sends accountJWT through nc, a connection of the system
// account user (SysCredsFile), and checks the server's reply.
func PushAccount(ctx context.Context, nc *nats.Conn, accountJWT string) error {
	msg, err := nc.RequestWithContext(ctx, ClaimsUpdateSubject, []byte(accountJWT))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPush, err)
	}
	var r server.ServerAPIClaimUpdateResponse
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return fmt.Errorf("%w: reply %q: %w", ErrPush, msg.Data, err)
	}
	switch {
	case r.Error != nil:
		return fmt.Errorf("%w: server refused it (%d): %s", ErrPush, r.Error.Code, r.Error.Description)
	case r.Data == nil || r.Data.Code != 200:
		return fmt.Errorf("%w: unexpected reply %q", ErrPush, msg.Data)
	}
	return nil
}
