package apply

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// AnnotationCreator is stamped on every object sc-job creates. Its value is
// Token(record UID, object): it proves sc-job created the object for that
// record even when the run died before its status write recorded the
// object's UID, so the next run adopts its own orphan instead of refusing
// it forever.
const AnnotationCreator = "servicelinker.sc-extension.io/creator"

// Token is the creator token of ref for the record whose ConfigMap has UID
// recordUID. Records live in the extension's namespace, where tenants
// cannot read, so a tenant cannot compute it; it names the object, so a
// token read off one object is worth nothing on another. "" when the
// record's UID is unknown: a token over a guessable input proves nothing.
func Token(recordUID string, ref connection.ResourceRef) string {
	if recordUID == "" {
		return ""
	}
	h := sha256.New()
	for _, s := range []string{recordUID, ref.Kind, ref.Namespace, ref.Name} {
		// NUL never occurs in a UID or an object name: the fields cannot
		// run into each other.
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// stamped is want with its creator token for own, as created.
func stamped[T object](want T, own Owner, r connection.ResourceRef) T {
	tok := Token(own.RecordUID, r)
	if tok == "" {
		return want
	}
	next := want.DeepCopyObject().(T)
	next.SetAnnotations(merged(want.GetAnnotations(), map[string]string{AnnotationCreator: tok}))
	return next
}

// createdFor reports whether cur's creator token proves sc-job created it:
// for own's record, or, for a shared object, for any record this run knows
// (Recorded), since a ServiceAccount one connection created is shared by
// the others that render it.
func (a *Applier) createdFor(k kindInfo, own Owner, r connection.ResourceRef, got string) bool {
	if got == "" {
		return false
	}
	if got == Token(own.RecordUID, r) {
		return true
	}
	if !k.shared {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for uid := range a.records {
		if got == Token(uid, r) {
			return true
		}
	}
	return false
}
