package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Create asks the agent to create a connection and returns the request id.
func (c *Client) Create(ctx context.Context, spec connection.Spec, creds connection.Credentials) (string, error) {
	return c.upsert(ctx, protocol.OpCreate, spec, creds)
}

// Update asks the agent to update a connection and returns the request id.
func (c *Client) Update(ctx context.Context, spec connection.Spec, creds connection.Credentials) (string, error) {
	return c.upsert(ctx, protocol.OpUpdate, spec, creds)
}

// upsert validates locally first, so a mistake is reported at once instead
// of as a Failed event; the agent validates again, as it must.
func (c *Client) upsert(ctx context.Context, op protocol.Op, spec connection.Spec, creds connection.Credentials) (string, error) {
	if err := connection.Validate(spec, creds); err != nil {
		return "", err
	}
	req := c.newRequest(op, spec)
	if len(creds) > 0 {
		pub, err := c.PublicKey(ctx)
		if err != nil {
			return "", fmt.Errorf("seal credentials: %w", err)
		}
		if req.Credentials, err = protocol.Seal(creds, pub); err != nil {
			return "", err
		}
	}
	if _, err := c.Publish(ctx, req); err != nil {
		return "", err
	}
	return req.ID, nil
}

// Delete asks the agent to delete a connection (and, if deleteResources,
// the objects it rendered) and returns the request id.
func (c *Client) Delete(ctx context.Context, name string, deleteResources bool) (string, error) {
	if err := connection.ValidateName(name); err != nil {
		return "", err
	}
	req := c.newRequest(protocol.OpDelete, connection.Spec{Name: name})
	req.DeleteResources = deleteResources
	if _, err := c.Publish(ctx, req); err != nil {
		return "", err
	}
	return req.ID, nil
}

func (c *Client) newRequest(op protocol.Op, spec connection.Spec) protocol.Request {
	return protocol.Request{
		Header:     protocol.NewHeader(protocol.KindRequest),
		ID:         NewRequestID(),
		Cluster:    c.cluster,
		Op:         op,
		SentAt:     time.Now().UTC(),
		Connection: spec,
	}
}

// Publish stores req in the request stream with its id as Nats-Msg-Id, so
// a publish retried within the duplicate window is stored once; duplicate
// reports whether the server recognised it as such.
func (c *Client) Publish(ctx context.Context, req protocol.Request) (duplicate bool, err error) {
	return c.publish(ctx, req, true)
}

// Resend publishes req again without Nats-Msg-Id, as a control plane
// retrying after the duplicate window would: only the agent's own memory of
// applied ids protects it. For tests and recovery tooling.
func (c *Client) Resend(ctx context.Context, req protocol.Request) error {
	_, err := c.publish(ctx, req, false)
	return err
}

func (c *Client) publish(ctx context.Context, req protocol.Request, dedupe bool) (bool, error) {
	data, err := protocol.Encode(req)
	if err != nil {
		return false, err
	}
	return c.PublishRaw(ctx, req.ID, data, dedupe)
}

// errCodeMaxMsgsPerSubject is JetStream's answer to a publish the
// request stream's per-subject limit (DiscardNewPerSubject) refuses.
const errCodeMaxMsgsPerSubject jetstream.ErrorCode = 10077

// PublishRaw publishes bytes as a request of this cluster; tests use it to
// send what Encode would refuse (oversize, wrong version).
func (c *Client) PublishRaw(ctx context.Context, id string, data []byte, dedupe bool) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	msg := &nats.Msg{Subject: protocol.RequestSubject(c.cluster), Data: data, Header: nats.Header{}}
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(protocol.RequestStream)}
	if dedupe && id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	ack, err := c.js.PublishMsg(ctx, msg, opts...)
	if apiErr := (*jetstream.APIError)(nil); errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeMaxMsgsPerSubject {
		return false, fmt.Errorf("publish request %s for cluster %s: %w; its agent is behind or down, send again later: %w",
			id, c.cluster, ErrClusterBacklog, err)
	}
	if err != nil {
		return false, fmt.Errorf("publish request %s for cluster %s: %w", id, c.cluster, err)
	}
	return ack.Duplicate, nil
}
