package render

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// secretProviderClass renders the Azure provider's SecretProviderClass.
// Identity: a client id in authInfo means workload identity (clientID); a
// secretStore.userAssignedIdentityId means the node's user-assigned managed
// identity. Pod identity is deprecated upstream, so it is always off.
func secretProviderClass(s connection.Spec) (*unstructured.Unstructured, error) {
	st := s.SecretStore
	if st == nil || st.KeyVaultName == "" {
		return nil, fmt.Errorf("%w: keyvaultCsi needs secretStore.keyVaultName", ErrIncomplete)
	}
	tenant := st.TenantID
	if tenant == "" {
		tenant = s.AuthInfo.TenantID
	}
	params := map[string]string{
		"usePodIdentity": "false",
		"keyvaultName":   st.KeyVaultName,
	}
	objects, err := objectsParam(st.Objects)
	if err != nil {
		return nil, err
	}
	params["objects"] = objects
	if tenant != "" {
		params["tenantId"] = tenant
	}
	switch {
	case s.AuthInfo.ClientID != "":
		params["clientID"] = s.AuthInfo.ClientID
	case st.UserAssignedID != "":
		params["useVMManagedIdentity"] = "true"
		params["userAssignedIdentityID"] = st.UserAssignedID
	}
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(SPCGroup + "/" + SPCVersion)
	u.SetKind(KindSecretProviderClass)
	u.SetNamespace(s.Scope)
	u.SetName(SecretProviderClassName(s.ID()))
	u.SetLabels(withUser(s.Labels, ownerLabels(s.ID())))
	u.SetAnnotations(withUser(s.Annotations, map[string]string{AnnotationDataHash: spcHash("azure", params)}))
	p := make(map[string]any, len(params))
	for k, v := range params {
		p[k] = v
	}
	u.Object["spec"] = map[string]any{"provider": "azure", "parameters": p}
	return u, nil
}

// objectsParam is the provider's "objects" parameter: a YAML document with an
// array of YAML strings. An entry may be "secret/name", "key/name" or
// "cert/name"; a bare name is a secret. Names are checked because they are
// spliced into YAML: a newline must not be able to add parameters.
func objectsParam(objects []string) (string, error) {
	var b strings.Builder
	b.WriteString("array:\n")
	for _, o := range objects {
		typ, name := "secret", o
		if t, n, ok := strings.Cut(o, "/"); ok && (t == "secret" || t == "key" || t == "cert") {
			typ, name = t, n
		}
		if !kvObjectName.MatchString(name) {
			return "", fmt.Errorf("%w: secretStore.objects: %q is not a Key Vault object name (letters, digits and '-', at most 127)", ErrIncomplete, name)
		}
		fmt.Fprintf(&b, "  - |\n    objectName: %s\n    objectType: %s\n", name, typ)
	}
	return b.String(), nil
}

var kvObjectName = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)

func spcHash(provider string, params map[string]string) string {
	m := map[string]string{"provider": provider}
	for k, v := range params {
		m["parameters."+k] = v
	}
	return StringHash(m)
}

// SecretProviderClassHash recomputes the hash of a live SecretProviderClass's
// spec, for drift and validate.
func SecretProviderClassHash(u *unstructured.Unstructured) string {
	provider, _, _ := unstructured.NestedString(u.Object, "spec", "provider")
	raw, _, _ := unstructured.NestedMap(u.Object, "spec", "parameters")
	params := make(map[string]string, len(raw))
	for k, v := range raw {
		params[k] = fmt.Sprint(v)
	}
	return spcHash(provider, params)
}
