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

// FeatureBinding is advertised by an agent whose sc-job applies
// spec.binding (issue 11). An agent without it (v0.1.0) decodes a request
// with a binding and ignores the field, so scctl asks for this feature
// before it sends one rather than let a binding vanish silently.
const FeatureBinding = "binding"

// features are what this build's agent advertises.
var features = []string{FeatureBinding}

// Features returns a copy of the features this build's agent advertises.
func Features() []string { return slices.Clone(features) }

// Heartbeat is what `az k8s-extension show` would report as statuses.
//
// It is also how scctl learns which protocol the agent speaks, so the
// fields agentVersion, apiVersions, recordSchema and features (and the
// header) keep their name and meaning in every envelope version:
// DecodeHeartbeat reads them even from a heartbeat of a version this build
// does not know.
type Heartbeat struct {
	Header
	Cluster      string `json:"cluster"`
	AgentVersion string `json:"agentVersion"`
	// APIVersions are the envelope versions the agent decodes, and
	// RecordSchema the record schema version it writes
	// (pkg/kube/record.SchemaVersion). Both were added in sc.v1 without a
	// version change: a v0.1.0 agent sends neither (read them through
	// Versions and Schema), a v0.1.0 reader ignores them.
	APIVersions  []string `json:"apiVersions,omitempty"`
	RecordSchema int      `json:"recordSchema,omitempty"`
	// Features name optional behaviour of the agent within the versions it
	// decodes (FeatureBinding). Added in sc.v1 without a version change: a
	// heartbeat without features (v0.1.0) means none, a v0.1.0 reader
	// ignores them. Read them through Supports.
	Features    []string `json:"features,omitempty"`
	Pod         string   `json:"pod,omitempty"`
	Leader      bool     `json:"leader"`
	Ready       bool     `json:"ready"`
	LastError   string   `json:"lastError,omitempty"`
	Connections int      `json:"connections"`
	// Phases counts the connections by phase (Succeeded, Pending, Failed,
	// ...; Unknown for a record the agent cannot read), for `scctl cluster
	// list`. Added in sc.v1 without a version change: an older agent sends
	// none, an older reader ignores it.
	Phases map[string]int `json:"phases,omitempty"`
	Time   time.Time      `json:"time"`
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

// Supports reports whether the agent advertises feature.
func (h Heartbeat) Supports(feature string) bool { return slices.Contains(h.Features, feature) }

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
// cluster, agentVersion, apiVersions, recordSchema, features, time) are returned and
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
		Features     []string  `json:"features"`
		Time         time.Time `json:"time"`
	}
	if err := json.Unmarshal(data, &frozen); err != nil {
		return Heartbeat{}, fmt.Errorf("heartbeat of apiVersion %q: %w", frozen.APIVersion, errors.Join(ErrInvalidEnvelope, err))
	}
	if frozen.Kind != KindHeartbeat {
		return Heartbeat{}, fmt.Errorf("kind %q, expected %q: %w", frozen.Kind, KindHeartbeat, ErrInvalidEnvelope)
	}
	return Heartbeat{Header: frozen.Header, Cluster: frozen.Cluster, AgentVersion: frozen.AgentVersion,
		APIVersions: frozen.APIVersions, RecordSchema: frozen.RecordSchema, Features: frozen.Features, Time: frozen.Time}, nil
}
