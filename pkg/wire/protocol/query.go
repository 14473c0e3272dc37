package protocol

import (
	"encoding/json"
	"fmt"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// Verb is a query the agent answers over NATS request/reply.
type Verb string

const (
	VerbList              Verb = "list"
	VerbShow              Verb = "show"
	VerbListConfiguration Verb = "list-configuration"
	VerbValidate          Verb = "validate"
	VerbPubKey            Verb = "pubkey"
)

// Verbs is every query verb, for help texts and routing tables.
func Verbs() []Verb {
	return []Verb{VerbList, VerbShow, VerbListConfiguration, VerbValidate, VerbPubKey}
}

// Query asks the agent something; Connection is empty for list and pubkey,
// Namespace optionally narrows list.
type Query struct {
	Header
	Verb       Verb   `json:"verb"`
	Connection string `json:"connection,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
}

// Reply error codes; scctl maps them to exit codes and messages.
const (
	CodeNotFound = "NotFound"
	CodeInvalid  = "Invalid"
	CodeInternal = "Internal"
)

// ReplyError is a failed query's answer.
type ReplyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *ReplyError) Error() string { return e.Code + ": " + e.Message }

// Reply answers a Query: exactly one of Error and Result is set.
type Reply struct {
	Header
	Error  *ReplyError     `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// ConnectionView is what list and show return: the stored connection without
// its request-id memory. Spec.Configurations already has credential values
// empty, because credentials are never part of a Spec.
type ConnectionView struct {
	Spec       connection.Spec   `json:"spec"`
	ObjectID   string            `json:"objectId"`
	Generation int64             `json:"generation"`
	Deleting   bool              `json:"deleting,omitempty"`
	Status     connection.Status `json:"status"`
}

// ConfigurationItem is one key of list-configuration, as rendered (after
// customizedKeys); Value is "" for credentials.
type ConfigurationItem struct {
	Name       string `json:"name"`
	Value      string `json:"value"`
	Credential bool   `json:"credential,omitempty"`
}

// CheckResult is one line of validate's report.
type CheckResult struct {
	Name        string `json:"name"`
	Result      string `json:"result"` // Success or Failure
	Description string `json:"description"`
}

// ValidateResult reports the in-cluster state of a connection.
type ValidateResult struct {
	Connection string        `json:"connection"`
	Valid      bool          `json:"valid"`
	Checks     []CheckResult `json:"checks"`
}

// PubKeyResult carries the agent's public curve key.
type PubKeyResult struct {
	PublicKey string `json:"publicKey"`
}

// NewReply wraps a result; it fails only if result cannot be marshalled.
func NewReply(result any) (Reply, error) {
	b, err := json.Marshal(result)
	if err != nil {
		return Reply{}, fmt.Errorf("encode reply: %w", err)
	}
	return Reply{Header: NewHeader(KindReply), Result: b}, nil
}

// ErrorReply wraps a failure.
func ErrorReply(code, message string) Reply {
	return Reply{Header: NewHeader(KindReply), Error: &ReplyError{Code: code, Message: message}}
}
