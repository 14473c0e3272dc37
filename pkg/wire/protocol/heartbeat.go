package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// legacyRecordSchema is the record schema of an agent whose heartbeat names
// none: v0.1.0 (commit ad02d28) wrote records without a schema version,
// which pkg/kube/record reads as version 1. Spelled out here rather than
// imported, so the wire contract does not depend on the Kubernetes store.
const legacyRecordSchema = 1

// legacyAPIVersion is what an agent decodes when its heartbeat says nothing
// at all (not even a header): the one version before apiVersions existed.
const legacyAPIVersion = "sc.v1"

// Heartbeat is what `az k8s-extension show` would report as statuses.
//
// It is also how scctl learns which protocol the agent speaks, so the
// fields agentVersion and apiVersions (and the header) keep their name and
// meaning in every envelope version: DecodeHeartbeat reads them even from a
// heartbeat of a version this build does not know.
type Heartbeat struct {
	Header
	Cluster      string `json:"cluster"`
	AgentVersion string `json:"agentVersion"`
	// APIVersions are the envelope versions the agent decodes, and
	// RecordSchema the record schema version it writes
	// (pkg/kube/record.SchemaVersion). Both were added in sc.v1 without a
	// version change: a v0.1.0 agent sends neither (read them through
	// Versions and Schema), a v0.1.0 reader ignores them.
	APIVersions  []string  `json:"apiVersions,omitempty"`
	RecordSchema int       `json:"recordSchema,omitempty"`
	Pod          string    `json:"pod,omitempty"`
	Leader       bool      `json:"leader"`
	Ready        bool      `json:"ready"`
	LastError    string    `json:"lastError,omitempty"`
	Connections  int       `json:"connections"`
	Time         time.Time `json:"time"`
}

// Versions are the envelope versions the agent decodes. A heartbeat
// without apiVersions comes from an agent that decodes only the version its
// heartbeat is written in (v0.1.0: sc.v1).
func (h Heartbeat) Versions() []string {
	switch {
	case len(h.APIVersions) > 0:
		return slices.Clone(h.APIVersions)
	case h.APIVersion != "":
		return []string{h.APIVersion}
	default:
		return []string{legacyAPIVersion}
	}
}

// Speaks reports whether the agent decodes envelopes of version v.
func (h Heartbeat) Speaks(v string) bool { return slices.Contains(h.Versions(), v) }

// Schema is the record schema version the agent writes; 1 for an agent
// that does not say (v0.1.0).
func (h Heartbeat) Schema() int {
	if h.RecordSchema > 0 {
		return h.RecordSchema
	}
	return legacyRecordSchema
}

// DecodeHeartbeat decodes a heartbeat of this build's version in full. A
// heartbeat of another version is not an error: its frozen fields (header,
// cluster, agentVersion, apiVersions, recordSchema, time) are returned and
// the rest left zero, so the reader can tell the user which release and
// versions the agent has instead of only that it cannot read it.
func DecodeHeartbeat(data []byte) (Heartbeat, error) {
	var hb Heartbeat
	err := Decode(data, KindHeartbeat, &hb)
	if !errors.Is(err, ErrUnsupportedVersion) {
		return hb, err
	}
	var frozen struct {
		Header
		Cluster      string    `json:"cluster"`
		AgentVersion string    `json:"agentVersion"`
		APIVersions  []string  `json:"apiVersions"`
		RecordSchema int       `json:"recordSchema"`
		Time         time.Time `json:"time"`
	}
	if err := json.Unmarshal(data, &frozen); err != nil {
		return Heartbeat{}, fmt.Errorf("heartbeat of apiVersion %q: %w", frozen.APIVersion, errors.Join(ErrInvalidEnvelope, err))
	}
	if frozen.Kind != KindHeartbeat {
		return Heartbeat{}, fmt.Errorf("kind %q, expected %q: %w", frozen.Kind, KindHeartbeat, ErrInvalidEnvelope)
	}
	return Heartbeat{Header: frozen.Header, Cluster: frozen.Cluster, AgentVersion: frozen.AgentVersion,
		APIVersions: frozen.APIVersions, RecordSchema: frozen.RecordSchema, Time: frozen.Time}, nil
}
