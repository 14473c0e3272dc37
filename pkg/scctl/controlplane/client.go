package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

var (
	// ErrAgentUnreachable: no agent answered (none subscribed, or none in
	// time). scctl maps it to exit code 3.
	ErrAgentUnreachable = errors.New("agent not reachable")
	// ErrServerUnreachable: the control plane's NATS server itself could
	// not be reached (connection refused, no server answering). scctl maps
	// it to exit code 3 as well, with a message naming the server.
	ErrServerUnreachable = errors.New("control plane not reachable")
	// ErrNoHeartbeat: the cluster's agent has never sent a heartbeat.
	ErrNoHeartbeat = errors.New("no heartbeat from agent")
	// ErrClusterBacklog: natsbus.RequestMaxPerCluster requests already
	// wait for the cluster, so the server refused this one (the queue
	// never evicts a stored request). The agent is behind or down; send
	// again once it has caught up. Nothing was stored.
	ErrClusterBacklog = errors.New("the cluster's request queue is full")
)

// Options says where to connect and for which cluster.
type Options struct {
	URL       string
	User      string
	Password  string
	CredsFile string
	// TLS is the CA bundle that verifies the server and an optional
	// client certificate; any file set makes TLS required.
	TLS     natsbus.TLSFiles
	Cluster string
	// Timeout bounds each query and publish; default 5s.
	Timeout time.Duration
}

// Client talks to one cluster's agent.
type Client struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	cluster string
	timeout time.Duration

	mu     sync.Mutex
	pubKey string
}

// Dial connects. Unlike the agent, scctl fails at once if the server is
// down: a user is waiting.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if err := protocol.ValidateCluster(o.Cluster); err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	auth, err := natsbus.ClientOptions(o.User, o.Password, o.CredsFile, o.TLS)
	if err != nil {
		return nil, fmt.Errorf("connect to control plane: %w", err)
	}
	opts := append([]nats.Option{nats.Name("scctl"), nats.Timeout(o.Timeout)}, auth...)
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(o.URL, opts...)
		done <- result{nc, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("connect to control plane: %w", ctx.Err())
	}
	if errors.Is(r.err, nats.ErrNoServers) {
		// nats.go reports a refused or timed-out dial to every URL as "no
		// servers"; wrong credentials are a different error (exit 1).
		return nil, fmt.Errorf("connect to control plane: %w: %w", ErrServerUnreachable, r.err)
	}
	if r.err != nil {
		return nil, fmt.Errorf("connect to control plane: %w", r.err)
	}
	js, err := jetstream.New(r.nc)
	if err != nil {
		r.nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Client{nc: r.nc, js: js, cluster: o.Cluster, timeout: o.Timeout}, nil
}

// Close closes the connection.
func (c *Client) Close() { c.nc.Close() }

// Cluster is the cluster this client talks to.
func (c *Client) Cluster() string { return c.cluster }

// Query asks the agent and decodes the result into out. A reply error is
// returned as *protocol.ReplyError (errors.As); no agent as
// ErrAgentUnreachable.
func (c *Client) Query(ctx context.Context, q protocol.Query, out any) error {
	q.Header = protocol.NewHeader(protocol.KindQuery)
	data, err := protocol.Encode(q)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	msg, err := c.nc.RequestWithContext(ctx, protocol.QuerySubject(c.cluster, q.Verb), data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%s of cluster %s: %w: no agent is subscribed", q.Verb, c.cluster, ErrAgentUnreachable)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%s of cluster %s: %w: no answer within %s", q.Verb, c.cluster, ErrAgentUnreachable, c.timeout)
	case err != nil:
		return fmt.Errorf("%s of cluster %s: %w", q.Verb, c.cluster, err)
	}
	var r protocol.Reply
	if err := protocol.Decode(msg.Data, protocol.KindReply, &r); err != nil {
		return fmt.Errorf("%s reply from cluster %s: %w", q.Verb, c.cluster, err)
	}
	if r.Error != nil {
		return r.Error
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(r.Result, out); err != nil {
		return fmt.Errorf("%s result from cluster %s: %w", q.Verb, c.cluster, err)
	}
	return nil
}

// PublicKey asks the agent for its curve key (cached for the client's life).
func (c *Client) PublicKey(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pubKey != "" {
		return c.pubKey, nil
	}
	var r protocol.PubKeyResult
	if err := c.Query(ctx, protocol.Query{Verb: protocol.VerbPubKey}, &r); err != nil {
		return "", err
	}
	c.pubKey = r.PublicKey
	return c.pubKey, nil
}

// LatestHeartbeat reads the agent's last heartbeat from the status stream;
// it answers even when the agent is down, which is when it matters. A
// heartbeat of an envelope version this build does not decode is returned
// with its version fields only (protocol.DecodeHeartbeat), so the caller can
// say which versions the agent speaks.
func (c *Client) LatestHeartbeat(ctx context.Context) (protocol.Heartbeat, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	s, err := c.js.Stream(ctx, protocol.StatusStream)
	if err != nil {
		return protocol.Heartbeat{}, fmt.Errorf("status stream: %w", err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, protocol.HeartbeatSubject(c.cluster))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return protocol.Heartbeat{}, fmt.Errorf("cluster %s: %w", c.cluster, ErrNoHeartbeat)
	}
	if err != nil {
		return protocol.Heartbeat{}, fmt.Errorf("heartbeat of cluster %s: %w", c.cluster, err)
	}
	hb, err := protocol.DecodeHeartbeat(raw.Data)
	if err != nil {
		return protocol.Heartbeat{}, fmt.Errorf("heartbeat of cluster %s: %w", c.cluster, err)
	}
	return hb, nil
}

// NewRequestID returns a random id (UUID v4 layout).
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
