package intake

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// scopeField is the connection's target namespace in the field-path form
// of connection.FieldError.
const scopeField = "scope"

// admit decodes, unseals, validates and checks the namespace policy. A
// delete is never refused by the policy: it carries no spec, and a record
// stored before the policy denied its namespace must stay removable. On rejection req carries whatever
// could be salvaged (id, name) so that the Failed event reaches the waiter.
func (in *Intake) admit(data []byte) (protocol.Request, connection.Credentials, *rejection) {
	req, err := protocol.DecodeRequest(data)
	if err != nil {
		return salvage(data), nil, &rejection{decodeReason(err), err}
	}
	if req.Cluster != in.o.Cluster {
		return req, nil, &rejection{ReasonInvalidRequest,
			fmt.Errorf("%w: request for cluster %q reached the agent of %q", protocol.ErrInvalidEnvelope, req.Cluster, in.o.Cluster)}
	}
	if req.Op == protocol.OpDelete {
		return req, nil, nil
	}
	creds, err := req.Credentials.Open(in.o.Key)
	if err != nil {
		return req, nil, &rejection{ReasonCannotUnseal, err}
	}
	if err := connection.Validate(req.Connection, creds); err != nil {
		return req, creds, &rejection{ReasonInvalidConnection, err}
	}
	// Refused before anything is stored: a record is what sc-job renders
	// from, and sc-job's own check is only the second line.
	if err := in.o.Namespaces.Allows(req.Connection.Scope); err != nil {
		return req, creds, &rejection{ReasonNamespaceDenied, fmt.Errorf("%s: %w", scopeField, err)}
	}
	return req, creds, nil
}

// salvage reads the id and name of a request that did not decode, leniently,
// so that its sender still learns why. Nothing else of it is trusted.
func salvage(data []byte) protocol.Request {
	var p struct {
		ID         string `json:"id"`
		Op         string `json:"op"`
		Connection struct {
			Name string `json:"name"`
		} `json:"connection"`
	}
	if json.Unmarshal(data, &p) != nil || len(p.ID) > 128 || len(p.Op) > 16 {
		return protocol.Request{}
	}
	return protocol.Request{ID: p.ID, Op: protocol.Op(p.Op), Connection: connection.Spec{Name: p.Connection.Name}}
}

func decodeReason(err error) string {
	switch {
	case errors.Is(err, protocol.ErrUnsupportedVersion):
		return ReasonUnsupportedVersion
	case errors.Is(err, protocol.ErrTooLarge):
		return ReasonTooLarge
	}
	return ReasonInvalidRequest
}

// redact is defence in depth: no layer should quote a credential value, but
// if one ever does, the value still never reaches a log line or an event.
func redact(err error, creds connection.Credentials) error {
	if err == nil || len(creds) == 0 {
		return err
	}
	s := err.Error()
	out := s
	for _, v := range credentialForms(creds) {
		out = strings.ReplaceAll(out, v, "<redacted>")
	}
	if out == s {
		return err
	}
	return redacted{msg: out, err: err}
}

// credentialForms lists each value as it may appear in an error: as is,
// Go-quoted (escapes) and base64 (how Secret data is quoted), longest
// first so a value that contains another is replaced whole.
func credentialForms(creds connection.Credentials) []string {
	var forms []string
	for _, v := range creds {
		if v == "" {
			continue
		}
		q := strconv.Quote(v)
		forms = append(forms, v, q[1:len(q)-1], base64.StdEncoding.EncodeToString([]byte(v)))
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return forms
}

// redacted keeps errors.Is working on the original chain while printing
// the scrubbed text.
type redacted struct {
	msg string
	err error
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }
