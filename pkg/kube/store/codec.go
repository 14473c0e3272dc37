package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

const (
	// VersionAnnotation on the credential Secret names the request whose
	// values it holds (Connection.CredentialsVersion).
	VersionAnnotation = "servicelinker.sc-extension.io/credentials-version"
	// RecordSelector selects record ConfigMaps (and credential Secrets).
	RecordSelector = connection.LabelManagedBy + "=" + connection.ManagedByValue + "," + connection.LabelConnection
)

const (
	keySpec               = "spec"
	keyGeneration         = "generation"
	keyCredentialsVersion = "credentialsVersion"
	keyDeletion           = "deletion"
	keyStatus             = "status"
	keyRequests           = "recentRequestIds"
)

// ErrCorrupt: a record ConfigMap cannot be decoded; only a human can fix it.
var ErrCorrupt = errors.New("corrupt connection record")

// IsRecord tells whether a ConfigMap is one of ours.
func IsRecord(cm *corev1.ConfigMap) bool {
	return cm != nil && cm.Labels[connection.LabelManagedBy] == connection.ManagedByValue && cm.Labels[connection.LabelConnection] != "" &&
		cm.Name == connection.ConfigMapName(cm.Labels[connection.LabelConnection])
}

// Decode turns a record ConfigMap into its connection.
func Decode(cm *corev1.ConfigMap) (connection.Connection, error) {
	var c connection.Connection
	if !IsRecord(cm) {
		return c, fmt.Errorf("configmap %s: not a connection record: %w", cm.GetName(), ErrCorrupt)
	}
	d := cm.Data
	if err := json.Unmarshal([]byte(d[keySpec]), &c.Spec); err != nil {
		return c, fmt.Errorf("configmap %s: spec: %w", cm.Name, errors.Join(ErrCorrupt, err))
	}
	var err error
	if c.Generation, err = parseInt(d[keyGeneration]); err != nil {
		return c, fmt.Errorf("configmap %s: generation: %w", cm.Name, errors.Join(ErrCorrupt, err))
	}
	c.CredentialsVersion = d[keyCredentialsVersion]
	if s := d[keyDeletion]; s != "" {
		c.Deletion = &connection.Deletion{}
		if err := json.Unmarshal([]byte(s), c.Deletion); err != nil {
			return c, fmt.Errorf("configmap %s: deletion: %w", cm.Name, errors.Join(ErrCorrupt, err))
		}
	}
	if s := d[keyStatus]; s != "" {
		if err := json.Unmarshal([]byte(s), &c.Status); err != nil {
			return c, fmt.Errorf("configmap %s: status: %w", cm.Name, errors.Join(ErrCorrupt, err))
		}
	}
	if s := d[keyRequests]; s != "" {
		if err := json.Unmarshal([]byte(s), &c.RecentRequestIDs); err != nil {
			return c, fmt.Errorf("configmap %s: recentRequestIds: %w", cm.Name, errors.Join(ErrCorrupt, err))
		}
	}
	if got, want := c.Spec.ID(), cm.Labels[connection.LabelConnection]; got != want {
		return c, fmt.Errorf("configmap %s: spec name %q maps to id %q, not %q: %w", cm.Name, c.Spec.Name, got, want, ErrCorrupt)
	}
	return c, nil
}

// encode writes c into cm's data and labels, keeping cm's other metadata.
func encode(cm *corev1.ConfigMap, c connection.Connection) error {
	spec, err := json.Marshal(c.Spec)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	status, err := json.Marshal(c.Status)
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	cm.Data = map[string]string{
		keySpec:       string(spec),
		keyGeneration: strconv.FormatInt(c.Generation, 10),
		keyStatus:     string(status),
	}
	if c.CredentialsVersion != "" {
		cm.Data[keyCredentialsVersion] = c.CredentialsVersion
	}
	if c.Deletion != nil {
		del, err := json.Marshal(c.Deletion)
		if err != nil {
			return fmt.Errorf("encode deletion: %w", err)
		}
		cm.Data[keyDeletion] = string(del)
	}
	if len(c.RecentRequestIDs) > 0 {
		ids, err := json.Marshal(c.RecentRequestIDs)
		if err != nil {
			return fmt.Errorf("encode request ids: %w", err)
		}
		cm.Data[keyRequests] = string(ids)
	}
	setOwnership(&cm.ObjectMeta, c.Spec)
	return nil
}

func setOwnership(m *metav1.ObjectMeta, spec connection.Spec) {
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
