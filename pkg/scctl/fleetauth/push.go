package fleetauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ClaimsUpdateSubject is where a system account user sends an account
// JWT; every server with a full resolver stores it and applies it (a
// revocation closes the revoked users' connections).
const ClaimsUpdateSubject = "$SYS.REQ.CLAIMS.UPDATE"

// ServerQuietPeriod is how long PushAccount waits for one more server to
// answer its census of the servers; an answer arrives within a round trip.
const ServerQuietPeriod = 250 * time.Millisecond

// ErrPush: a server refused the account JWT, or not every server took it.
var ErrPush = errors.New("push account JWT")

// PushAccount sends accountJWT through sys, a connection of the system
// account user (SysCredsFile), and returns once every server has stored
// and applied it: a server that has not yet would still admit a revoked
// user. It then closes any connection of revokedUsers still open on any
// server. The server closes those itself when it applies a revocation,
// but a client that reconnects to a server while that server applies it
// can slip through (seen on a 3-node cluster: admitted before, registered
// after the server's sweep), so the sweep is repeated here until none is
// found.
func PushAccount(ctx context.Context, sys *nats.Conn, accountJWT string, revokedUsers ...string) error {
	claims, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPush, err)
	}
	servers, err := serverIDs(ctx, sys)
	if err != nil {
		return err
	}
	if err := pushToEvery(ctx, sys, accountJWT, servers); err != nil {
		return err
	}
	for range 5 {
		open, err := closeConnections(ctx, sys, servers, claims.Subject, revokedUsers)
		if err != nil || open == 0 {
			return err
		}
	}
	return fmt.Errorf("%w: connections of revoked users keep reappearing", ErrPush)
}

// serverIDs asks every server for its id and its JetStream cluster's
// size (the meta group's peers, reachable or not), and gathers answers
// until every peer has answered, or none more arrives for
// ServerQuietPeriod. Fewer answers than peers is an error naming the
// count: a server that is down or unreachable would still admit the
// revoked user when it comes back, until its resolver's next sync, so the
// caller must know and push again.
func serverIDs(ctx context.Context, sys *nats.Conn) (map[string]bool, error) {
	ids := map[string]bool{}
	expected := 1
	err := gather(ctx, sys, "$SYS.REQ.SERVER.PING.JSZ", nil, func(data []byte) (bool, error) {
		var r server.ServerAPIJszResponse
		if err := json.Unmarshal(data, &r); err != nil || r.Server == nil || r.Server.ID == "" {
			return false, fmt.Errorf("%w: server census: reply %q", ErrPush, data)
		}
		ids[r.Server.ID] = true
		if r.Data != nil && r.Data.Meta != nil {
			expected = max(expected, r.Data.Meta.Size)
		}
		return len(ids) >= expected, nil
	}, ServerQuietPeriod)
	switch {
	case err != nil:
		return nil, err
	case len(ids) == 0:
		return nil, fmt.Errorf("%w: no server answered as the system account", ErrPush)
	case len(ids) < expected:
		return nil, fmt.Errorf("%w: %d of the JetStream cluster's %d servers answered; a server that is down gets the "+
			"account at its resolver's next sync after it is back: run the command again once it is", ErrPush, len(ids), expected)
	}
	return ids, nil
}

// pushToEvery publishes the JWT and waits for every server's verdict.
func pushToEvery(ctx context.Context, sys *nats.Conn, accountJWT string, servers map[string]bool) error {
	pending := make(map[string]bool, len(servers))
	for id := range servers {
		pending[id] = true
	}
	err := gather(ctx, sys, ClaimsUpdateSubject, []byte(accountJWT), func(data []byte) (bool, error) {
		var r server.ServerAPIClaimUpdateResponse
		if err := json.Unmarshal(data, &r); err != nil {
			return false, fmt.Errorf("%w: reply %q: %w", ErrPush, data, err)
		}
		switch {
		case r.Error != nil:
			return false, fmt.Errorf("%w: server refused it (%d): %s", ErrPush, r.Error.Code, r.Error.Description)
		case r.Data == nil || r.Data.Code != 200:
			return false, fmt.Errorf("%w: unexpected reply %q", ErrPush, data)
		}
		if r.Server != nil {
			delete(pending, r.Server.ID)
		}
		return len(pending) == 0, nil
	}, 0)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("%w: %d of %d servers did not confirm", ErrPush, len(pending), len(servers))
	}
	return nil
}

// closeConnections asks each server for the users' connections in the
// account and disconnects them; it returns how many it found.
func closeConnections(ctx context.Context, sys *nats.Conn, servers map[string]bool, account string, users []string) (int, error) {
	found := 0
	for id := range servers {
		for _, user := range users {
			req, _ := json.Marshal(server.ConnzOptions{Account: account, User: user})
			msg, err := sys.RequestWithContext(ctx, fmt.Sprintf("$SYS.REQ.SERVER.%s.CONNZ", id), req)
			if err != nil {
				return 0, fmt.Errorf("%w: connections on server %s: %w", ErrPush, id, err)
			}
			var r server.ServerAPIConnzResponse
			if err := json.Unmarshal(msg.Data, &r); err != nil || r.Error != nil || r.Data == nil {
				return 0, fmt.Errorf("%w: connections on server %s: reply %q", ErrPush, id, msg.Data)
			}
			for _, c := range r.Data.Conns {
				found++
				kick, _ := json.Marshal(server.KickClientReq{CID: c.Cid})
				// A connection gone meanwhile is an error reply: fine.
				if _, err := sys.RequestWithContext(ctx, fmt.Sprintf("$SYS.REQ.SERVER.%s.KICK", id), kick); err != nil {
					return 0, fmt.Errorf("%w: disconnect %d on server %s: %w", ErrPush, c.Cid, id, err)
				}
			}
		}
	}
	return found, nil
}

// gather publishes a request and hands each reply to take until take
// says done, ctx ends, or (quiet > 0) no reply came for quiet.
func gather(ctx context.Context, nc *nats.Conn, subject string, data []byte, take func([]byte) (bool, error), quiet time.Duration) error {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPush, err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // the connection may be closing
	if err := nc.PublishRequest(subject, inbox, data); err != nil {
		return fmt.Errorf("%w: %w", ErrPush, err)
	}
	for {
		msg, err := next(ctx, sub, quiet)
		switch {
		case err != nil && quiet > 0 && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
			return nil
		case err != nil:
			return fmt.Errorf("%w: waiting for replies to %s: %w", ErrPush, subject, err)
		}
		done, err := take(msg.Data)
		if err != nil || done {
			return err
		}
	}
}

func next(ctx context.Context, sub *nats.Subscription, quiet time.Duration) (*nats.Msg, error) {
	if quiet > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, quiet)
		defer cancel()
	}
	return sub.NextMsgWithContext(ctx)
}
