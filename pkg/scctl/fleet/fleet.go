// Package fleet adds clusters to and removes them from a running control
// plane in JWT mode: a cluster's request consumer and its NATS user, and on
// removal the revocation pushed to every server, the consumer and the
// requests no one will read. These are the steps of `scctl cluster
// add|remove`; the fleet bench and the tests run the same ones.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Add creates cluster id's consumer (ackWait 0: natsbus.DefaultAckWait),
// then issues its user and returns the user's .creds. The consumer comes
// first and is idempotent: a failed Add leaves no credentials behind, and
// running it again completes it. A cluster issued already is
// fleetauth.ErrIssued.
func Add(ctx context.Context, js jetstream.JetStream, k *fleetauth.Keystore, id string, ackWait time.Duration) ([]byte, error) {
	cfg := natsbus.ConsumerConfig(id, ackWait)
	if _, err := js.CreateOrUpdateConsumer(ctx, protocol.RequestStream, cfg); err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", cfg.Durable, err)
	}
	return k.Issue(id)
}

// Removed is what Remove did.
type Removed struct {
	Cluster     string `json:"cluster"`
	RevokedUser string `json:"revokedUser"`
	Consumer    string `json:"consumer"`
	// DroppedRequests were waiting for the cluster and are purged.
	DroppedRequests uint64 `json:"droppedRequests"`
}

// Remove revokes cluster id's user first, pushed through sys (a system
// account connection) to every server: whatever fails after, the cluster
// can no longer connect. Then it deletes the consumer and purges the
// requests still waiting. The keystore forgets the cluster last, so a
// Remove that failed midway is completed by running it again. A cluster
// never issued is fleetauth.ErrNotIssued.
func Remove(ctx context.Context, js jetstream.JetStream, sys *nats.Conn, k *fleetauth.Keystore, id string) (Removed, error) {
	pub, err := k.UserPublicKey(id)
	if err != nil {
		return Removed{}, err
	}
	token, err := k.Revoke(id)
	if err != nil {
		return Removed{}, err
	}
	if err := fleetauth.PushAccount(ctx, sys, token, pub); err != nil {
		return Removed{}, err
	}
	v := Removed{Cluster: id, RevokedUser: pub, Consumer: protocol.ConsumerName(id)}
	s, err := js.Stream(ctx, protocol.RequestStream)
	if err != nil {
		return Removed{}, fmt.Errorf("stream %s: %w", protocol.RequestStream, err)
	}
	switch err := s.DeleteConsumer(ctx, v.Consumer); {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	case err != nil:
		return Removed{}, fmt.Errorf("delete consumer %s: %w", v.Consumer, err)
	}
	// Nobody will read them: they would otherwise wait a week
	// (RequestMaxAge) and count against the stream.
	subject := protocol.RequestSubject(id)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return Removed{}, fmt.Errorf("stream %s: %w", protocol.RequestStream, err)
	}
	v.DroppedRequests = info.State.Subjects[subject]
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return Removed{}, fmt.Errorf("purge %s: %w", subject, err)
	}
	if err := k.Forget(id); err != nil {
		return Removed{}, err
	}
	return v, nil
}
