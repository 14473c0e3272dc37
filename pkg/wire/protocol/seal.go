package protocol

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nkeys"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// ErrUnseal: sealed credentials could not be opened (wrong recipient key,
// tampering). Redelivery will not help.
var ErrUnseal = errors.New("cannot open sealed credentials")

// Sealed is a curve25519 box (nkeys xkey) from Sender to Recipient.
type Sealed struct {
	Sender     string `json:"sender"`
	Recipient  string `json:"recipient"`
	Ciphertext []byte `json:"ciphertext"`
}

// Seal encrypts creds to the agent's public xkey with a fresh sender key, so
// that the JetStream store holds only ciphertext.
func Seal(creds connection.Credentials, recipient string) (*Sealed, error) {
	if !nkeys.IsValidPublicCurveKey(recipient) {
		return nil, fmt.Errorf("recipient %q is not a public curve key: %w", recipient, ErrInvalidEnvelope)
	}
	sender, err := nkeys.CreateCurveKeys()
	if err != nil {
		return nil, fmt.Errorf("create sender key: %w", err)
	}
	pub, err := sender.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("sender public key: %w", err)
	}
	plain, err := json.Marshal(map[string]string(creds))
	if err != nil {
		return nil, fmt.Errorf("encode credentials: %w", err)
	}
	box, err := sender.Seal(plain, recipient)
	if err != nil {
		return nil, fmt.Errorf("seal credentials: %w", err)
	}
	return &Sealed{Sender: pub, Recipient: recipient, Ciphertext: box}, nil
}

// Open decrypts with the agent's curve key pair. The error never contains
// plaintext.
func (s *Sealed) Open(kp nkeys.KeyPair) (connection.Credentials, error) {
	if s == nil {
		return connection.Credentials{}, nil
	}
	own, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("agent public key: %w", err)
	}
	if s.Recipient != own {
		return nil, fmt.Errorf("sealed to %s, this agent is %s: %w", s.Recipient, own, ErrUnseal)
	}
	plain, err := kp.Open(s.Ciphertext, s.Sender)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnseal, err)
	}
	var m map[string]string
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, fmt.Errorf("%w: payload is not a JSON object of strings", ErrUnseal)
	}
	return connection.Credentials(m), nil
}
