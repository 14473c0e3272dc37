package protocol

import (
	"bytes"
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
//
// Limit or Continue set asks list for one page (ListPage). Neither set is
// how scctl v0.1.0 (commit ad02d28) asks: it gets the whole list as a bare
// array of ConnectionView, or an error if that would not fit in one reply.
type Query struct {
	Header
	Verb       Verb   `json:"verb"`
	Connection string `json:"connection,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	// Limit is the most records one page holds (the agent caps it at
	// MaxPageSize, and ends a page early by bytes);
	// 0 with Continue set means DefaultPageSize.
	Limit int `json:"limit,omitempty"`
	// Continue is the previous page's ListPage.Continue, unchanged.
	Continue string `json:"continue,omitempty"`
}

// Page sizes of list. The agent also ends a page at half MaxMessageBytes:
// the only bound on one connection's size is the request that carried it
// (MaxMessageBytes), so no count can bound a page's bytes. A typical view
// is 1-1.3 KiB, so a default page is count-bound in practice; a page of
// larger ones ends by bytes, and one record too large for any reply is
// reported in Errors (RecordTooLarge).
const (
	DefaultPageSize = 80
	MaxPageSize     = 1000
)

// Paged tells whether q asks list for a page rather than the v0.1.0 array.
func (q Query) Paged() bool { return q.Limit != 0 || q.Continue != "" }

// ListPage is one page of list: Items and Errors sorted by connection name,
// Continue set while records after this page may remain. Every record is in
// exactly one page of a walk, either as an item or as an error, however the
// records change meanwhile: a record created behind the walk's position is
// not seen, one removed ahead of it is not listed.
type ListPage struct {
	Items    []ConnectionView `json:"items"`
	Continue string           `json:"continue,omitempty"`
	Errors   []RecordError    `json:"errors,omitempty"`
}

// UnmarshalJSON also reads the bare array an agent of v0.1.0 answers with
// (it ignores Limit and Continue): that is the whole list, one page.
func (p *ListPage) UnmarshalJSON(b []byte) error {
	*p = ListPage{} // a page replaces, never merges into, what p held
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		return json.Unmarshal(b, &p.Items)
	}
	type plain ListPage // without this method
	return json.Unmarshal(b, (*plain)(p))
}

// Reasons of a RecordError.
const (
	// RecordCorrupt: the record does not decode; only a human can fix it.
	RecordCorrupt = "RecordCorrupt"
	// RecordUnsupportedVersion: a newer release wrote the record.
	RecordUnsupportedVersion = "UnsupportedVersion"
	// RecordTooLarge: the record's view alone is more than a reply carries.
	RecordTooLarge = "TooLarge"
)

// RecordError is a stored record list could not return; the rest of the
// list is answered regardless.
type RecordError struct {
	ObjectID string `json:"objectId"`
	Reason   string `json:"reason"`
	Message  string `json:"message"`
}

// Reply error codes; scctl maps them to exit codes and messages.
const (
	CodeNotFound = "NotFound"
	CodeInvalid  = "Invalid"
	CodeInternal = "Internal"
	// CodeTooLarge: the answer would not fit in MaxMessageBytes (a list
	// asked for without paging, by scctl v0.1.0).
	CodeTooLarge = "TooLarge"
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
//
// Workloads and BindingMode say where the key reaches when the connection
// has a binding: the workloads of spec.binding, as an environment variable
// (env) or a file (volume). Both were added in sc.v1 without a version
// change: the list stays a bare array (what scctl v0.1.0 reads), and an
// unbound key carries neither field.
type ConfigurationItem struct {
	Name        string                 `json:"name"`
	Value       string                 `json:"value"`
	Credential  bool                   `json:"credential,omitempty"`
	Workloads   []connection.Workload  `json:"workloads,omitempty"`
	BindingMode connection.BindingMode `json:"bindingMode,omitempty"`
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

// EncodeResult is Encode of a successful Reply whose result is JSON the
// caller encoded with encoding/json (or spliced from such pieces). Encode
// would scan the whole result again to check and compact it, which costs
// more than building a list page; here it is copied once.
func EncodeResult(result json.RawMessage) ([]byte, error) {
	head, err := json.Marshal(NewHeader(KindReply))
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	const key = `,"result":`
	n := len(head) + len(key) + len(result)
	if n > MaxMessageBytes {
		return nil, fmt.Errorf("envelope is %d bytes, limit %d: %w", n, MaxMessageBytes, ErrTooLarge)
	}
	b := make([]byte, 0, n)
	b = append(b, head[:len(head)-1]...) // without its closing brace
	b = append(b, key...)
	b = append(b, result...)
	return append(b, '}'), nil
}

// ErrorReply wraps a failure.
func ErrorReply(code, message string) Reply {
	return Reply{Header: NewHeader(KindReply), Error: &ReplyError{Code: code, Message: message}}
}
