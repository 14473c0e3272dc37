package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

const (
	// VersionAnnotation on the credential Secret names the request whose
	// values it holds (Connection.CredentialsVersion).
	VersionAnnotation = "servicelinker.sc-extension.io/credentials-version"
	// Selector selects record ConfigMaps (and credential Secrets).
	Selector = connection.LabelManagedBy + "=" + connection.ManagedByValue + "," + connection.LabelConnection
	// Finalizer keeps a deleted record (terminating) until the leading
	// agent has published its Deleted status event; see docs/store.md.
	Finalizer = "sc-extension.io/status"
)

// Data keys of a record ConfigMap; see the package doc.
const (
	KeySpec               = "spec"
	KeyGeneration         = "generation"
	KeyCredentialsVersion = "credentialsVersion"
	KeyDeletion           = "deletion"
	KeyStatus             = "status"
	KeyRequests           = "recentRequestIds"
)

var (
	// ErrCorrupt: a record ConfigMap cannot be decoded; only a human can fix it.
	ErrCorrupt = errors.New("corrupt connection record")
	// ErrNotFound: no record for that connection.
	ErrNotFound = errors.New("connection not found")
)

// IsNotFound reports whether err means the connection has no record.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// LabelSelector is Selector for listers.
func LabelSelector() labels.Selector {
	s, err := labels.Parse(Selector)
	if err != nil {
		panic(fmt.Sprintf("record selector %q: %v", Selector, err)) // a constant: cannot happen
	}
	return s
}

// IsRecord tells whether a ConfigMap is one of ours: labelled as a record
// and named after the connection id its label carries.
func IsRecord(cm *corev1.ConfigMap) bool {
	return cm != nil && cm.Labels[connection.LabelManagedBy] == connection.ManagedByValue && cm.Labels[connection.LabelConnection] != "" &&
		cm.Name == connection.ConfigMapName(cm.Labels[connection.LabelConnection])
}

// ID is the connection object id a record (or credential Secret) is labelled with.
func ID(m metav1.Object) string { return m.GetLabels()[connection.LabelConnection] }

// Decode turns a record ConfigMap into its connection. A record of a newer
// schema is ErrUnsupportedVersion and nothing of it is decoded: its fields
// may mean something else now. Every other failure wraps ErrCorrupt.
func Decode(cm *corev1.ConfigMap) (connection.Connection, error) {
	var c connection.Connection
	if !IsRecord(cm) {
		return c, fmt.Errorf("configmap %s: not a connection record: %w", cm.GetName(), ErrCorrupt)
	}
	if err := checkRecordSchema(cm); err != nil {
		return c, err
	}
	d := cm.Data
	if err := json.Unmarshal([]byte(d[KeySpec]), &c.Spec); err != nil {
		return c, fmt.Errorf("configmap %s: spec: %w", cm.Name, errors.Join(ErrCorrupt, err))
	}
	var err error
	if c.Generation, err = parseInt(d[KeyGeneration]); err != nil {
		return c, fmt.Errorf("configmap %s: generation: %w", cm.Name, errors.Join(ErrCorrupt, err))
	}
	c.CredentialsVersion = d[KeyCredentialsVersion]
	c.RecordUID = string(cm.UID)
	if s := d[KeyDeletion]; s != "" {
		c.Deletion = &connection.Deletion{}
		if err := json.Unmarshal([]byte(s), c.Deletion); err != nil {
			return c, fmt.Errorf("configmap %s: deletion: %w", cm.Name, errors.Join(ErrCorrupt, err))
		}
	}
	if s := d[KeyStatus]; s != "" {
		if err := json.Unmarshal([]byte(s), &c.Status); err != nil {
			return c, fmt.Errorf("configmap %s: status: %w", cm.Name, errors.Join(ErrCorrupt, err))
		}
	}
	if s := d[KeyRequests]; s != "" {
		if err := json.Unmarshal([]byte(s), &c.RecentRequestIDs); err != nil {
			return c, fmt.Errorf("configmap %s: recentRequestIds: %w", cm.Name, errors.Join(ErrCorrupt, err))
		}
	}
	if got, want := c.Spec.ID(), cm.Labels[connection.LabelConnection]; got != want {
		return c, fmt.Errorf("configmap %s: spec name %q maps to id %q, not %q: %w", cm.Name, c.Spec.Name, got, want, ErrCorrupt)
	}
	return c, nil
}

// Encode writes c into cm's data and labels, keeping cm's other metadata,
// and stamps it SchemaVersion (which migrates a record of an older
// schema). It refuses cm if a newer release wrote it: Encode replaces all
// of the data, so it would drop whatever this build does not know.
func Encode(cm *corev1.ConfigMap, c connection.Connection) error {
	if err := checkRecordSchema(cm); errors.Is(err, ErrUnsupportedVersion) {
		return fmt.Errorf("encode: %w", err)
	}
	spec, err := json.Marshal(c.Spec)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	status, err := json.Marshal(c.Status)
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	cm.Data = map[string]string{
		KeySchemaVersion: schemaValue,
		KeySpec:          string(spec),
		KeyGeneration:    strconv.FormatInt(c.Generation, 10),
		KeyStatus:        string(status),
	}
	if c.CredentialsVersion != "" {
		cm.Data[KeyCredentialsVersion] = c.CredentialsVersion
	}
	if c.Deletion != nil {
		del, err := json.Marshal(c.Deletion)
		if err != nil {
			return fmt.Errorf("encode deletion: %w", err)
		}
		cm.Data[KeyDeletion] = string(del)
	}
	if len(c.RecentRequestIDs) > 0 {
		ids, err := json.Marshal(c.RecentRequestIDs)
		if err != nil {
			return fmt.Errorf("encode request ids: %w", err)
		}
		cm.Data[KeyRequests] = string(ids)
	}
	SetOwnership(&cm.ObjectMeta, c.Spec)
	// Every write adds it, so a record of an older release gains it too.
	if !HasFinalizer(cm) {
		cm.Finalizers = append(cm.Finalizers, Finalizer)
	}
	return nil
}

// HasFinalizer tells whether cm is held for its Deleted status event.
func HasFinalizer(cm *corev1.ConfigMap) bool {
	for _, f := range cm.Finalizers {
		if f == Finalizer {
			return true
		}
	}
	return false
}

// Terminating tells whether cm was deleted and waits for its finalizers:
// the connection is removed, only its Deleted event may be outstanding.
func Terminating(cm *corev1.ConfigMap) bool { return cm.DeletionTimestamp != nil }

// WithoutFinalizer is cm's finalizers less Finalizer, for the write that
// releases a terminating record once its Deleted event is published.
func WithoutFinalizer(cm *corev1.ConfigMap) []string {
	var out []string
	for _, f := range cm.Finalizers {
		if f != Finalizer {
			out = append(out, f)
		}
	}
	return out
}

// New returns the record ConfigMap of c in namespace.
func New(namespace string, c connection.Connection) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: connection.ConfigMapName(c.Spec.ID()), Namespace: namespace}}
	if err := Encode(cm, c); err != nil {
		return nil, err
	}
	return cm, nil
}

// SetOwnership labels and annotates a record or credential Secret as the
// one of spec's connection.
func SetOwnership(m *metav1.ObjectMeta, spec connection.Spec) {
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[connection.LabelManagedBy] = connection.ManagedByValue
	m.Labels[connection.LabelConnection] = spec.ID()
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[connection.AnnotationConnectionName] = spec.Name
}

func parseInt(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}
