package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// APIVersion is the envelope version this build writes, and the only one it
// decodes (APIVersions). Within a version changes are additive only: a new
// field is optional and every reader ignores fields it does not know, so
// neither side needs the other's release. A change an older reader would
// misread (a field removed, renamed, retyped or given a new meaning, a new
// required field) needs a new version, which an older reader refuses with
// ErrUnsupportedVersion instead of misreading. See docs/protocol.md
// "Compatibility and upgrades".
const APIVersion = "sc.v1"

// APIVersions lists the envelope versions this build decodes; the agent
// announces them in its heartbeat so scctl can tell whether it may talk to it.
func APIVersions() []string { return []string{APIVersion} }

// MaxMessageBytes bounds every envelope; NATS' default max payload is 1 MiB
// and a connection is a few KiB, so anything near this is a mistake or abuse.
const MaxMessageBytes = 256 << 10

// Envelope kinds.
const (
	KindRequest   = "ConnectionRequest"
	KindStatus    = "ConnectionStatus"
	KindHeartbeat = "Heartbeat"
	KindQuery     = "Query"
	KindReply     = "QueryReply"
)

var (
	// ErrInvalidEnvelope: the message cannot be understood; redelivery will not help.
	ErrInvalidEnvelope = errors.New("invalid envelope")
	// ErrUnsupportedVersion: the envelope's apiVersion is not one this
	// build decodes; its body is not read, since its meaning may differ.
	ErrUnsupportedVersion = errors.New("unsupported apiVersion")
	// ErrTooLarge: the message exceeds MaxMessageBytes.
	ErrTooLarge = errors.New("message too large")
)

// Op is what a request asks for.
type Op string

const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Header is common to every envelope.
type Header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// Request asks the agent of Cluster to create, update or delete a connection.
type Request struct {
	Header
	ID      string    `json:"id"`
	Cluster string    `json:"cluster"`
	Op      Op        `json:"op"`
	SentAt  time.Time `json:"sentAt"`
	// Connection is the full spec for create and update; delete needs only its name.
	Connection connection.Spec `json:"connection"`
	// Credentials holds the credential values sealed to the agent's public key.
	Credentials *Sealed `json:"credentials,omitempty"`
	// DeleteResources asks a delete to also remove the rendered objects.
	DeleteResources bool `json:"deleteResources,omitempty"`
}

// StatusEvent reports a phase change of one connection.
type StatusEvent struct {
	Header
	Cluster    string                   `json:"cluster"`
	Connection string                   `json:"connection"`
	ObjectID   string                   `json:"objectId"`
	RequestID  string                   `json:"requestId,omitempty"`
	Generation int64                    `json:"generation"`
	Phase      connection.Phase         `json:"phase"`
	Reason     string                   `json:"reason,omitempty"`
	Message    string                   `json:"message,omitempty"`
	Resources  []connection.ResourceRef `json:"resources,omitempty"`
	Time       time.Time                `json:"time"`
	// Seq orders the events of one record (Incarnation): it is the record's
	// write count at the state described, and a record's Deleted event
	// has the last write's Seq + 1. 0 for an event no record describes
	// (a request rejected or retried at intake). Added in sc.v1 without a
	// version change: older readers ignore both fields.
	Seq int64 `json:"seq,omitempty"`
	// Incarnation tells a connection's records apart: deleting a
	// connection and creating it again starts a new record at Seq 1.
	Incarnation string `json:"incarnation,omitempty"`
}

// NewHeader fills the header of a kind.
func NewHeader(kind string) Header { return Header{APIVersion: APIVersion, Kind: kind} }

// Encode marshals an envelope and enforces the size limit.
func Encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("envelope is %d bytes, limit %d: %w", len(b), MaxMessageBytes, ErrTooLarge)
	}
	return b, nil
}

// Decode checks size, version and kind before unmarshalling into out.
// Fields out does not know are ignored (encoding/json's default, relied on:
// it is what lets a sc.v1 envelope grow fields). The version is checked
// before the kind and the body, so a newer sender learns that it was not
// understood rather than why a body it never meant for us is invalid.
func Decode(data []byte, kind string, out any) error {
	if len(data) > MaxMessageBytes {
		return fmt.Errorf("message is %d bytes, limit %d: %w", len(data), MaxMessageBytes, ErrTooLarge)
	}
	var h Header
	if err := json.Unmarshal(data, &h); err != nil {
		return fmt.Errorf("not a JSON envelope: %w", errors.Join(ErrInvalidEnvelope, err))
	}
	if h.APIVersion != APIVersion {
		return fmt.Errorf("apiVersion %q, this build speaks %q: %w", h.APIVersion, APIVersion, ErrUnsupportedVersion)
	}
	if h.Kind != kind {
		return fmt.Errorf("kind %q, expected %q: %w", h.Kind, kind, ErrInvalidEnvelope)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s: %w", kind, errors.Join(ErrInvalidEnvelope, err))
	}
	return nil
}

// DecodeRequest decodes and checks the parts of a request that do not need
// the catalog: ids, cluster, op. Spec validation is connection.Validate's job.
func DecodeRequest(data []byte) (Request, error) {
	var r Request
	if err := Decode(data, KindRequest, &r); err != nil {
		return Request{}, err
	}
	var errs []error
	if r.ID == "" || len(r.ID) > 128 {
		errs = append(errs, errors.New("id: must be 1 to 128 characters"))
	}
	if err := ValidateCluster(r.Cluster); err != nil {
		errs = append(errs, err)
	}
	switch r.Op {
	case OpCreate, OpUpdate:
		if r.DeleteResources {
			errs = append(errs, errors.New("deleteResources: only valid with op delete"))
		}
	case OpDelete:
		if r.Credentials != nil {
			errs = append(errs, errors.New("credentials: a delete carries none"))
		}
	default:
		errs = append(errs, fmt.Errorf("op: %q is not one of create, update, delete", r.Op))
	}
	if err := connection.ValidateName(r.Connection.Name); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return Request{}, fmt.Errorf("%w: %w", ErrInvalidEnvelope, errors.Join(errs...))
	}
	return r, nil
}
