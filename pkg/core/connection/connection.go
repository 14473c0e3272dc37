package connection

import (
	"sort"
	"time"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
)

// TargetService is the Azure resource a connection points at.
type TargetService struct {
	Type catalog.TargetType `json:"type"`
	ID   string             `json:"id"`
}

// AuthInfo says how the workload authenticates. It never holds a secret: a
// service principal's secret travels as the <PREFIX>_CLIENTSECRET credential.
type AuthInfo struct {
	AuthType       catalog.AuthType `json:"authType"`
	ClientID       string           `json:"clientId,omitempty"`
	TenantID       string           `json:"tenantId,omitempty"`
	SubscriptionID string           `json:"subscriptionId,omitempty"`
}

// Configuration is one key of the rendered Secret. For a credential key the
// Value is always empty here; the value lives in Credentials, which is sealed
// in transit and kept only in Secrets.
type Configuration struct {
	Name       string `json:"name"`
	Value      string `json:"value"`
	Credential bool   `json:"credential,omitempty"`
}

// SecretStore configures the Secret Store CSI driver for keyvaultCsi.
type SecretStore struct {
	KeyVaultName   string   `json:"keyVaultName,omitempty"`
	TenantID       string   `json:"tenantId,omitempty"`
	Objects        []string `json:"objects,omitempty"`
	UserAssignedID string   `json:"userAssignedIdentityId,omitempty"`
}

// Spec is what the control plane asks for. It is safe to store in a ConfigMap
// and to log: credential values are not part of it.
type Spec struct {
	Name           string             `json:"name"`
	Scope          string             `json:"scope"`
	TargetService  TargetService      `json:"targetService"`
	AuthInfo       AuthInfo           `json:"authInfo"`
	ClientType     catalog.ClientType `json:"clientType,omitempty"`
	Configurations []Configuration    `json:"configurations,omitempty"`
	CustomizedKeys map[string]string  `json:"customizedKeys,omitempty"`
	SecretStore    *SecretStore       `json:"secretStore,omitempty"`
	Labels         map[string]string  `json:"labels,omitempty"`
	Annotations    map[string]string  `json:"annotations,omitempty"`
	// Binding, when set, names workloads sc-job wires to the rendered
	// objects (binding.go). Added in sc.v1 without a version change: agents
	// that advertise FeatureBinding in their heartbeat apply it.
	Binding *Binding `json:"binding,omitempty"`
}

// ID is the DNS-1123 id every object name of this connection derives from.
func (s Spec) ID() string { return ObjectID(s.Name) }

// RenderedKey returns the key name as it lands in the Secret, after customizedKeys.
func (s Spec) RenderedKey(name string) string {
	if n, ok := s.CustomizedKeys[name]; ok && n != "" {
		return n
	}
	return name
}

// Phase is where a connection is in its lifecycle.
type Phase string

const (
	// PhasePending: desired state stored, waiting for sc-job.
	PhasePending Phase = "Pending"
	// PhaseRunning: an sc-job run is rendering it.
	PhaseRunning Phase = "Running"
	// PhaseSucceeded: the rendered objects match the spec.
	PhaseSucceeded Phase = "Succeeded"
	// PhaseFailed: the last run failed; Reason and Message say why.
	PhaseFailed Phase = "Failed"
	// PhaseDeleted is only ever published as a status event: once a delete
	// has been applied the connection's records are gone.
	PhaseDeleted Phase = "Deleted"
)

// NeedsWork reports whether sc-job still has something to do: Running
// counts, because a run that died mid-way must be picked up again.
func (p Phase) NeedsWork() bool { return p == PhasePending || p == PhaseRunning }

// ResourceRef names an object sc-job rendered for a connection.
type ResourceRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// OwnedObject is an object sc-job created (or adopted once from a record of
// an older release), with the UID the API server assigned to it.
type OwnedObject struct {
	ResourceRef
	UID string `json:"uid"`
}

// OwnedUID returns the UID recorded for ref, if any.
func (s Status) OwnedUID(ref ResourceRef) (string, bool) {
	for _, o := range s.Owned {
		if o.ResourceRef == ref {
			return o.UID, true
		}
	}
	return "", false
}

// Own records uid for ref, replacing the UID of an object it replaced (a
// deleted object sc-job re-created). It reports whether Owned changed.
func (s *Status) Own(ref ResourceRef, uid string) bool {
	for i, o := range s.Owned {
		if o.ResourceRef == ref {
			if o.UID == uid {
				return false
			}
			// a new slice: a copy of this Status may share the old one
			s.Owned = append(append(s.Owned[:i:i], OwnedObject{ResourceRef: ref, UID: uid}), s.Owned[i+1:]...)
			return true
		}
	}
	s.Owned = append(s.Owned, OwnedObject{ResourceRef: ref, UID: uid})
	return true
}

// Disown forgets ref (sc-job deleted it, or no longer renders it). It
// reports whether Owned changed. Like Own, it never writes into the slice
// it was given.
func (s *Status) Disown(ref ResourceRef) bool {
	for i, o := range s.Owned {
		if o.ResourceRef == ref {
			s.Owned = append(s.Owned[:i:i], s.Owned[i+1:]...)
			return true
		}
	}
	return false
}

// Deletion records a delete request that has been accepted but not yet applied.
type Deletion struct {
	RequestID       string `json:"requestId"`
	DeleteResources bool   `json:"deleteResources"`
}

// Status is written by the agent (Pending) and by sc-job (everything else).
type Status struct {
	Phase              Phase         `json:"phase"`
	Reason             string        `json:"reason,omitempty"`
	Message            string        `json:"message,omitempty"`
	ObservedGeneration int64         `json:"observedGeneration"`
	LastRequestID      string        `json:"lastRequestId,omitempty"`
	Resources          []ResourceRef `json:"resources,omitempty"`
	// Owned are the objects sc-job created for this connection, by the UID
	// the API server gave each: an existing object is sc-extension's only
	// if its UID is recorded here (labels can be forged, a UID cannot).
	// Records of releases before it have none; see pkg/kube/apply for how
	// their objects are adopted once.
	Owned     []OwnedObject `json:"owned,omitempty"`
	UpdatedAt time.Time     `json:"updatedAt"`
	// Attempts counts the runs in a row that did not finish this work
	// (same generation and request); it sets the backoff and is reset by a
	// success or by new work.
	Attempts int `json:"attempts,omitempty"`
	// RetryAfter: sc-job leaves the connection alone until then, unless new
	// work arrives or something wakes it (see DueAt).
	RetryAfter *time.Time `json:"retryAfter,omitempty"`
	// LastFailure is the newest run that did not finish the connection's
	// work. It outlives a later success, so the evidence of a failed run
	// stays findable after that run's Job is gone.
	LastFailure *Failure `json:"lastFailure,omitempty"`
	// Seq counts the writes of this record (pkg/kube/store bumps it on
	// each); status events carry it so the control plane can order them.
	Seq int64 `json:"seq,omitempty"`
	// Incarnation is a token the store draws when it creates the record: a
	// connection deleted and created again starts a new Seq, and the token
	// tells the two records' events apart.
	Incarnation string `json:"incarnation,omitempty"`
	// Bound is what sc-job last bound for this connection (bound.go); nil
	// when it binds no workload.
	Bound *BoundState `json:"bound,omitempty"`
}

// Failure is what a run that did not finish a connection's work leaves in
// its status: enough to find that run and its log.
type Failure struct {
	// Since is the first failure of this streak (Attempts counts it).
	Since time.Time `json:"since"`
	// Time is this failure.
	Time time.Time `json:"time"`
	// Phase it left the connection in: Failed (permanent) or Pending
	// (Retrying, or parked on its namespace).
	Phase   Phase  `json:"phase"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Run is the sc-job pod that failed (kubectl logs <run> -n <namespace>).
	Run string `json:"run,omitempty"`
	// Generation and RequestID are the work that failed: new work is due
	// at once whatever the backoff.
	Generation int64  `json:"generation"`
	RequestID  string `json:"requestId,omitempty"`
}

// Connection is a stored connection: its spec, the generation the agent gave
// that spec, a pending deletion if any, and its status.
type Connection struct {
	Spec       Spec  `json:"spec"`
	Generation int64 `json:"generation"`
	// CredentialsVersion is the id of the request whose credential values
	// the credential Secret must hold; the Secret carries the same id, so a
	// reader can tell a matching pair from a half-written or racing one.
	CredentialsVersion string    `json:"credentialsVersion,omitempty"`
	Deletion           *Deletion `json:"deletion,omitempty"`
	Status             Status    `json:"status"`
	// RecentRequestIDs holds the ids of the last requests applied, newest
	// last, so that a redelivered request is recognised even after a newer
	// one has been applied.
	RecentRequestIDs []string `json:"recentRequestIds,omitempty"`
	// RecordUID is the UID the API server gave the record this connection
	// was read from; "" for one not read from a record. Only sc-job and
	// the agent can read records, so sc-job derives from it the creator
	// token it stamps on what it creates. It is never stored or sent.
	RecordUID string `json:"-"`
}

// MaxRecentRequestIDs bounds RecentRequestIDs; JetStream redelivers within
// its ack window, so a short memory is enough.
const MaxRecentRequestIDs = 16

// Seen reports whether the request id was already applied to this connection.
func (c *Connection) Seen(requestID string) bool {
	for _, id := range c.RecentRequestIDs {
		if id == requestID {
			return true
		}
	}
	return false
}

// Remember records an applied request id, keeping the newest MaxRecentRequestIDs.
func (c *Connection) Remember(requestID string) {
	c.RecentRequestIDs = append(c.RecentRequestIDs, requestID)
	if n := len(c.RecentRequestIDs); n > MaxRecentRequestIDs {
		c.RecentRequestIDs = append([]string(nil), c.RecentRequestIDs[n-MaxRecentRequestIDs:]...)
	}
}

// Credentials maps credential configuration names (before customizedKeys) to
// their values. Its String and GoString never print a value, so an accidental
// %v in a log line or error leaks only key names.
type Credentials map[string]string

// String lists the key names only.
func (c Credentials) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := "Credentials{"
	for i, k := range keys {
		if i > 0 {
			out += ", "
		}
		out += k + ":<redacted>"
	}
	return out + "}"
}

// GoString keeps %#v as safe as %v.
func (c Credentials) GoString() string { return c.String() }
