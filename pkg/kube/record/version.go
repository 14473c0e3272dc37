package record

import (
	"errors"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SchemaVersion is the record layout this build reads and writes. It is
// bumped only by a change an older reader would misread or corrupt on its
// next write; an additive field an older reader ignores keeps it. A record
// without KeySchemaVersion was written by v0.1.0 and is version 1.
const SchemaVersion = 1

// KeySchemaVersion is the record data key (decimal) naming the layout the
// record was written with.
const KeySchemaVersion = "schemaVersion"

// SchemaAnnotation on the credential Secret is its KeySchemaVersion: the
// Secret is half of the record (written first), so a newer release's
// Secret is refused like a newer record.
const SchemaAnnotation = "servicelinker.sc-extension.io/schema-version"

// ErrUnsupportedVersion: the record (or its credential Secret) was written
// by a newer release with a layout this build does not know. It is not
// corrupt: nothing may be decoded from it and nothing written over it, since
// a write would drop what this build cannot see. It does not wrap ErrCorrupt.
var ErrUnsupportedVersion = errors.New("connection record has a newer schema version than this build supports")

var schemaValue = strconv.Itoa(SchemaVersion)

// checkSchema judges a stored schema version: absent is 1 (v0.1.0), a
// positive decimal up to SchemaVersion is readable, a bigger one is
// ErrUnsupportedVersion, anything else ErrCorrupt.
func checkSchema(what, raw string, present bool) error {
	if !present {
		return nil
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < 1 || raw != strconv.Itoa(v) {
		return fmt.Errorf("%s: schema version %q is not a positive decimal: %w", what, raw, ErrCorrupt)
	}
	if v > SchemaVersion {
		return fmt.Errorf("%s: schema version %d, this build supports up to %d: %w", what, v, SchemaVersion, ErrUnsupportedVersion)
	}
	return nil
}

// checkRecordSchema is checkSchema of a record ConfigMap.
func checkRecordSchema(cm *corev1.ConfigMap) error {
	raw, ok := cm.Data[KeySchemaVersion]
	return checkSchema("configmap "+cm.Name, raw, ok)
}

// CheckCredentials refuses a credential Secret a newer release wrote
// (ErrUnsupportedVersion) or whose schema annotation is garbage
// (ErrCorrupt); one without the annotation is v0.1.0's and readable.
func CheckCredentials(sec *corev1.Secret) error {
	raw, ok := sec.Annotations[SchemaAnnotation]
	return checkSchema("secret "+sec.Name, raw, ok)
}

// StampCredentials marks a credential Secret about to be written with
// SchemaVersion.
func StampCredentials(m *metav1.ObjectMeta) {
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[SchemaAnnotation] = schemaValue
}
