package render

import (
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

var (
	// ErrMissingCredential: a credential configuration has no value in the
	// stored credentials. Only the key name is ever reported.
	ErrMissingCredential = errors.New("credential value missing")
	// ErrIncomplete: the spec lacks something its auth type needs to render
	// (a client id for workload identity, a secretStore for keyvaultCsi).
	ErrIncomplete = errors.New("spec incomplete for its auth type")
)

// Objects is what one connection renders. Secret is nil for keyvaultCsi,
// ServiceAccount is set only for workload identity, SecretProviderClass only
// for keyvaultCsi.
type Objects struct {
	Secret              *corev1.Secret
	ServiceAccount      *corev1.ServiceAccount
	SecretProviderClass *unstructured.Unstructured
}

// Refs names the rendered objects, in a fixed order (Secret, ServiceAccount,
// SecretProviderClass), as recorded in Status.Resources.
func (o Objects) Refs() []connection.ResourceRef {
	var refs []connection.ResourceRef
	if o.Secret != nil {
		refs = append(refs, connection.ResourceRef{Kind: KindSecret, Namespace: o.Secret.Namespace, Name: o.Secret.Name})
	}
	if o.ServiceAccount != nil {
		refs = append(refs, connection.ResourceRef{Kind: KindServiceAccount, Namespace: o.ServiceAccount.Namespace, Name: o.ServiceAccount.Name})
	}
	if o.SecretProviderClass != nil {
		refs = append(refs, connection.ResourceRef{Kind: KindSecretProviderClass, Namespace: o.SecretProviderClass.GetNamespace(), Name: o.SecretProviderClass.GetName()})
	}
	return refs
}

// Refs names what a connection's spec renders without needing its
// credentials: what a delete has to remove.
func Refs(s connection.Spec) []connection.ResourceRef {
	id, ns := s.ID(), s.Scope
	switch s.AuthInfo.AuthType {
	case catalog.AuthKeyvaultCSI:
		return []connection.ResourceRef{{Kind: KindSecretProviderClass, Namespace: ns, Name: SecretProviderClassName(id)}}
	case catalog.AuthWorkloadIdentity:
		refs := []connection.ResourceRef{{Kind: KindSecret, Namespace: ns, Name: connection.SecretName(id)}}
		if s.AuthInfo.ClientID != "" {
			refs = append(refs, connection.ResourceRef{Kind: KindServiceAccount, Namespace: ns, Name: connection.ServiceAccountName(s.AuthInfo.ClientID)})
		}
		return refs
	default:
		return []connection.ResourceRef{{Kind: KindSecret, Namespace: ns, Name: connection.SecretName(id)}}
	}
}

// Render builds the objects for c. Credential values come only from creds;
// the spec never carries them.
func Render(c connection.Connection, creds connection.Credentials) (Objects, error) {
	s := c.Spec
	if s.AuthInfo.AuthType == catalog.AuthKeyvaultCSI {
		spc, err := secretProviderClass(s)
		if err != nil {
			return Objects{}, err
		}
		return Objects{SecretProviderClass: spc}, nil
	}
	secret, err := renderSecret(s, creds)
	if err != nil {
		return Objects{}, err
	}
	out := Objects{Secret: secret}
	if s.AuthInfo.AuthType == catalog.AuthWorkloadIdentity {
		if s.AuthInfo.ClientID == "" {
			return Objects{}, fmt.Errorf("%w: workload identity needs authInfo.clientId", ErrIncomplete)
		}
		out.ServiceAccount = ServiceAccount(s.Scope, s.AuthInfo.ClientID, s.AuthInfo.TenantID)
	}
	return out, nil
}

func renderSecret(s connection.Spec, creds connection.Credentials) (*corev1.Secret, error) {
	data := make(map[string][]byte, len(s.Configurations))
	for _, cfg := range s.Configurations {
		v := cfg.Value
		if cfg.Credential {
			cv, ok := creds[cfg.Name]
			if !ok || cv == "" {
				return nil, fmt.Errorf("%w: %s", ErrMissingCredential, cfg.Name)
			}
			v = cv
		}
		data[s.RenderedKey(cfg.Name)] = []byte(v)
	}
	if s.Binding.ModeOrDefault() == connection.BindingVolume {
		// servicebinding.io's Provisioned Service entries, for the
		// directory the Secret is mounted as; the spec's own keys win.
		for k, v := range map[string]string{BindingTypeKey: BindingType(s.TargetService.Type), BindingProviderKey: BindingProvider} {
			if _, ok := data[k]; !ok {
				data[k] = []byte(v)
			}
		}
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: KindSecret},
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   s.Scope,
			Name:        connection.SecretName(s.ID()),
			Labels:      withUser(s.Labels, ownerLabels(s.ID())),
			Annotations: withUser(s.Annotations, map[string]string{AnnotationDataHash: DataHash(data)}),
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}, nil
}

// ServiceAccount is the workload-identity ServiceAccount for clientID in ns.
// It carries no connection label and no user labels: it is shared by every
// connection of that namespace using that client id (see pkg/kube/apply for who
// may remove it), so no single connection's metadata belongs on it.
func ServiceAccount(ns, clientID, tenantID string) *corev1.ServiceAccount {
	ann := map[string]string{AnnotationWIClientID: clientID}
	if tenantID != "" {
		ann[AnnotationWITenantID] = tenantID
	}
	sa := &corev1.ServiceAccount{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: KindServiceAccount},
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   ns,
			Name:        connection.ServiceAccountName(clientID),
			Labels:      map[string]string{LabelManagedBy: ManagedByValue, LabelWIUse: "true"},
			Annotations: ann,
		},
	}
	sa.Annotations[AnnotationDataHash] = ServiceAccountHash(sa)
	return sa
}

// ServiceAccountHash hashes the workload-identity metadata of a
// ServiceAccount, the part sc-job owns.
func ServiceAccountHash(sa metav1.Object) string {
	m := map[string]string{}
	for _, k := range []string{AnnotationWIClientID, AnnotationWITenantID} {
		if v, ok := sa.GetAnnotations()[k]; ok {
			m["annotation:"+k] = v
		}
	}
	if v, ok := sa.GetLabels()[LabelWIUse]; ok {
		m["label:"+LabelWIUse] = v
	}
	return StringHash(m)
}

// withUser merges the user's labels or annotations under ours: validation
// already refuses user keys in our namespace, and ours win regardless.
func withUser(user, ours map[string]string) map[string]string {
	out := make(map[string]string, len(user)+len(ours))
	maps.Copy(out, user)
	maps.Copy(out, ours)
	return out
}
