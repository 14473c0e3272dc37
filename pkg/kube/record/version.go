package record

import "errors"

// SchemaVersion is the record layout this build reads and writes. It is
// bumped only by a change an older reader would misread or corrupt on its
// next write; an additive field an older reader ignores keeps it. A record
// without KeySchemaVersion was written by v0.1.0 and is version 1.
const SchemaVersion = 1

// KeySchemaVersion is the record data key (decimal) naming the layout the
// record was written with, and the annotation
// servicelinker.sc-extension.io/schema-version on its credential Secret.
const KeySchemaVersion = "schemaVersion"

// ErrUnsupportedVersion: the record (or its credential Secret) was written
// by a newer release with a layout this build does not know. It is not
// corrupt: nothing may be decoded from it and nothing written over it, since
// a write would drop what this build cannot see. It does not wrap ErrCorrupt.
var ErrUnsupportedVersion = errors.New("connection record has a newer schema version than this build supports")
