package query

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// replyReserve is what a reply holds besides its page's items and errors:
// the envelope (~60 bytes), the page's own keys (~40) and a continue token
// (at most ~300: base64 of a 100-character name and a 63-character id).
const replyReserve = 2 << 10

// pageBudget bounds the items and errors of one reply, commas included, so
// that every reply encodes under protocol.MaxMessageBytes: one record larger
// than this cannot be listed at all.
const pageBudget = protocol.MaxMessageBytes - replyReserve

// pageFill is where a page of more than one record ends: half the message
// limit keeps every such reply well under it, and holds DefaultPageSize
// typical connections (1-1.3 KiB each). Only a page of one record may be
// larger, up to pageBudget.
const pageFill = protocol.MaxMessageBytes / 2

// maxErrorMessage bounds a RecordError's message: a JSON decoder's error
// can quote much of what it choked on.
const maxErrorMessage = 512

// entry is one record as list, show and list-configuration answer it,
// encoded once when the record's version was first seen.
type entry struct {
	// name orders the list: the connection's name, or for a record that
	// cannot be read the name it is annotated with, else its object id.
	name string
	// namespace is the connection's scope; "" for a record that cannot be
	// read, whose scope cannot be trusted: it is reported in every list.
	namespace string
	id        string
	// raw is the encoded protocol.ConnectionView, or for a record that
	// cannot be read the encoded protocol.RecordError.
	raw []byte
	// cause is why the record cannot be read; nil for a readable one.
	cause error
}

func (e *entry) failed() bool { return e.cause != nil }

// newEntry encodes c's view.
func newEntry(c connection.Connection) (*entry, error) {
	raw, err := json.Marshal(View(c))
	if err != nil {
		return nil, fmt.Errorf("encode view of %s: %w", c.Spec.ID(), err)
	}
	return &entry{name: c.Spec.Name, namespace: c.Spec.Scope, id: c.Spec.ID(), raw: raw}, nil
}

// failedEntry is a record that cannot be read: name is what it is
// annotated with ("" if nothing), cause the decode error.
func failedEntry(name, id string, cause error) *entry {
	if name == "" {
		name = id
	}
	reason := protocol.RecordCorrupt
	if errors.Is(cause, record.ErrUnsupportedVersion) {
		reason = protocol.RecordUnsupportedVersion
	}
	e := &entry{name: name, id: id, cause: cause}
	e.raw = encodeRecordError(protocol.RecordError{ObjectID: id, Reason: reason, Message: cause.Error()})
	return e
}

func encodeRecordError(re protocol.RecordError) []byte {
	if len(re.Message) > maxErrorMessage {
		re.Message = strings.ToValidUTF8(re.Message[:maxErrorMessage], "") + "..."
	}
	raw, _ := json.Marshal(re) // three strings: cannot fail
	return raw
}

// before orders entries by name, then id: two records may carry the same
// name only if one of them is damaged, and the id tells them apart.
func (e *entry) before(c cursor) bool {
	return e.name < c.name || e.name == c.name && e.id < c.id
}

// Snapshot is every record at one moment, ordered by name: what one list
// query reads. It is never modified once built.
type Snapshot struct {
	entries []*entry
}

func newSnapshot(entries []*entry) *Snapshot {
	sort.Slice(entries, func(i, j int) bool { return entries[i].before(entries[j].cursor()) })
	return &Snapshot{entries: entries}
}

// Len is the number of records, readable or not.
func (s *Snapshot) Len() int { return len(s.entries) }

// cursor is a position in the name order; a page starts after it.
type cursor struct{ name, id string }

func (e *entry) cursor() cursor { return cursor{e.name, e.id} }

// tokenPrefix versions the continue token, so a later change to its layout
// can tell an old token from garbage.
const tokenPrefix = "c1\x00"

// encode is the opaque continue token: the last record of a page, by name,
// so it stays valid whichever replica answers and however records change.
func (c cursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(tokenPrefix + c.name + "\x00" + c.id))
}

func parseCursor(token string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	rest, ok := strings.CutPrefix(string(b), tokenPrefix)
	i := strings.LastIndexByte(rest, 0)
	if err != nil || !ok || i < 0 {
		return cursor{}, fmt.Errorf("%w: continue token %q was not issued by this agent; start the list again", errInvalid, token)
	}
	return cursor{name: rest[:i], id: rest[i+1:]}, nil
}

func (e *entry) in(namespace string) bool {
	return namespace == "" || e.failed() || e.namespace == namespace
}

// page is the encoded protocol.ListPage of at most limit records of
// namespace ("" for all) after token ("" for the first page). A page also
// ends before pageFill, unless its first record alone is larger; a record
// larger than pageBudget is reported as a RecordError instead, so the walk
// always moves on.
func (s *Snapshot) page(namespace, token string, limit int) (raw []byte, next string, err error) {
	switch {
	case limit < 0:
		return nil, "", fmt.Errorf("%w: limit %d is negative", errInvalid, limit)
	case limit == 0:
		limit = protocol.DefaultPageSize
	case limit > protocol.MaxPageSize:
		limit = protocol.MaxPageSize
	}
	start := 0
	if token != "" {
		after, err := parseCursor(token)
		if err != nil {
			return nil, "", err
		}
		start = sort.Search(len(s.entries), func(i int) bool {
			e := s.entries[i]
			return !e.before(after) && e.cursor() != after
		})
	}
	var items, errs [][]byte
	var last *entry
	size := 0
	for _, e := range s.entries[start:] {
		if !e.in(namespace) {
			continue
		}
		raw, isErr := e.listed()
		if last != nil && (len(items)+len(errs) == limit || size+len(raw)+1 > pageFill) {
			next = last.cursor().encode() // a record remains: the page continues
			break
		}
		size += len(raw) + 1
		if isErr {
			errs = append(errs, raw)
		} else {
			items = append(items, raw)
		}
		last = e
	}
	var b bytes.Buffer
	b.Grow(size + 512)
	b.WriteString(`{"items":[`)
	join(&b, items)
	b.WriteString(`]`)
	if next != "" {
		b.WriteString(`,"continue":"` + next + `"`)
	}
	if len(errs) > 0 {
		b.WriteString(`,"errors":[`)
		join(&b, errs)
		b.WriteString(`]`)
	}
	b.WriteString(`}`)
	return b.Bytes(), next, nil
}

// listed is what a page holds of e: its encoded view, or its RecordError
// (isErr) if it cannot be read or is too large for any reply.
func (e *entry) listed() (raw []byte, isErr bool) {
	if len(e.raw)+1 <= pageBudget {
		return e.raw, e.failed()
	}
	return encodeRecordError(protocol.RecordError{ObjectID: e.id, Reason: protocol.RecordTooLarge,
		Message: fmt.Sprintf("connection %q is %d bytes encoded, more than a reply carries (%d); read its record "+
			"ConfigMap %s instead", e.name, len(e.raw), pageBudget, connection.ConfigMapName(e.id))}), true
}

// all is the v0.1.0 answer to list: every view of namespace as one bare
// array. That shape has no room for a record it cannot read, so such a
// record fails it, as in v0.1.0; and it has to fit in one reply.
func (s *Snapshot) all(namespace string) ([]byte, error) {
	var items [][]byte
	var failed []string
	size := 2
	for _, e := range s.entries {
		switch {
		case !e.in(namespace):
		case e.failed():
			failed = append(failed, e.id)
		default:
			items = append(items, e.raw)
			size += len(e.raw) + 1
		}
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("%w: %d connection record(s) cannot be read (%s); this scctl predates paged lists, "+
			"which report them and list the others: upgrade scctl", errUnreadable, len(failed), strings.Join(first(failed, 5), ", "))
	}
	if size > pageBudget {
		return nil, fmt.Errorf("%w: the list of %d connections is %d bytes, more than one reply carries (%d); "+
			"this scctl predates paged lists: upgrade scctl, or narrow the list with --kube-namespace",
			errTooLarge, len(items), size, pageBudget)
	}
	var b bytes.Buffer
	b.Grow(size)
	b.WriteByte('[')
	join(&b, items)
	b.WriteByte(']')
	return b.Bytes(), nil
}

// join writes parts separated by commas.
func join(b *bytes.Buffer, parts [][]byte) {
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(p)
	}
}

func first(ids []string, n int) []string {
	if len(ids) > n {
		return append(ids[:n:n], fmt.Sprintf("and %d more", len(ids)-n))
	}
	return ids
}
