package natsbus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// ErrNoCluster: a connection without a cluster id would use the shared inbox
// prefix, which a cluster-confined user is not allowed to subscribe to.
var ErrNoCluster = errors.New("cluster id is required")

// Options says where and as whom an agent connects.
type Options struct {
	URL     string
	Cluster string
	// User and Password, or CredsFile (a .creds file, JWT + seed), or none
	// for an unauthenticated development server.
	User      string
	Password  string
	CredsFile string
	// TLS adds a CA bundle and a client certificate; any file set makes
	// TLS required, as a tls:// URL does.
	TLS TLSFiles
	// Name shows up in the server's connection list (e.g. the pod name).
	Name   string
	Logger zerolog.Logger
	// MaxReconnectWait caps the reconnect backoff; default 30s.
	MaxReconnectWait time.Duration
}

// Connect dials the control plane and returns the connection and its
// JetStream context. It does not fail when the server is down: the agent
// must keep running (and answer its readiness probe honestly) until the
// control plane comes back, so the first dial is retried like a reconnect.
// ctx only bounds argument checking and option setup; the connection lives
// until Close.
func Connect(ctx context.Context, o Options) (*nats.Conn, jetstream.JetStream, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := protocol.ValidateCluster(o.Cluster); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNoCluster, err)
	}
	if o.MaxReconnectWait <= 0 {
		o.MaxReconnectWait = 30 * time.Second
	}
	log := o.Logger.With().Str("cluster", o.Cluster).Logger()
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.CustomInboxPrefix(protocol.InboxPrefix(o.Cluster)),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(Backoff(time.Second/2, o.MaxReconnectWait)),
		// A stale TCP connection (NAT timeout, node loss) is noticed within
		// about a minute instead of the default four.
		nats.PingInterval(20 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn().Err(err).Msg("disconnected from NATS")
		}),
		// A dial that fails (refused, unknown certificate authority, bad
		// credentials) is retried forever; say why each time, or an agent
		// that never connects gives no reason.
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn().Err(scrubbed{err, o.URL}).Msg("connecting to NATS failed; retrying")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("reconnected to NATS")
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("connected to NATS")
		}),
		nats.ClosedHandler(func(*nats.Conn) { log.Info().Msg("NATS connection closed") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS error")
		}),
	}
	auth, err := ClientOptions(o.User, o.Password, o.CredsFile, o.TLS)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS: %w", err)
	}
	opts = append(opts, auth...)
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", RedactURLs(o.URL), scrubbed{err, o.URL})
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream context: %w", err)
	}
	return nc, js, nil
}

// Backoff returns a reconnect delay that doubles per attempt from base up
// to max, with jitter so that many agents do not reconnect in lockstep after
// a control-plane restart.
func Backoff(base, max time.Duration) func(attempts int) time.Duration {
	return func(attempts int) time.Duration {
		d := base
		for i := 1; i < attempts && d < max; i++ {
			d *= 2
		}
		d = min(d, max)
		return d/2 + rand.N(d/2+1)
	}
}

// RedactURLs keeps a password embedded in a URL list (every entry of it)
// out of messages; a list that does not parse is not echoed at all.
func RedactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			return "<unparseable URL>"
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}

// scrubbed is err with every occurrence of the URL list replaced by its
// redacted form (nats.go quotes the URL in some errors); errors.Is still
// sees the original.
type scrubbed struct {
	err  error
	urls string
}

func (s scrubbed) Error() string {
	msg := strings.ReplaceAll(s.err.Error(), s.urls, RedactURLs(s.urls))
	for _, u := range strings.Split(s.urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			msg = strings.ReplaceAll(msg, u, RedactURLs(u))
		}
	}
	return msg
}

func (s scrubbed) Unwrap() error { return s.err }
