package render

import (
	"strings"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// The ownership vocabulary is connection's (one definition for every
// package); these names keep rendering code readable.
const (
	LabelManagedBy     = connection.LabelManagedBy
	ManagedByValue     = connection.ManagedByValue
	LabelConnection    = connection.LabelConnection
	AnnotationDataHash = connection.AnnotationDataHash

	AnnotationWIClientID = "azure.workload.identity/client-id"
	AnnotationWITenantID = "azure.workload.identity/tenant-id"
	LabelWIUse           = "azure.workload.identity/use"
)

// The servicebinding.io entries a Secret bound in volume mode carries.
const (
	BindingTypeKey     = "type"
	BindingProviderKey = "provider"
	BindingProvider    = "azure"
)

// BindingType is the servicebinding.io type of a target: its catalog name,
// lowercased ("storage-blob", "keyvault").
func BindingType(t catalog.TargetType) string { return strings.ToLower(string(t)) }

// Kinds of rendered objects, as they appear in connection.ResourceRef.
const (
	KindSecret              = "Secret"
	KindServiceAccount      = "ServiceAccount"
	KindSecretProviderClass = "SecretProviderClass"
)

// SecretProviderClass API coordinates (Secret Store CSI driver).
const (
	SPCGroup    = "secrets-store.csi.x-k8s.io"
	SPCVersion  = "v1"
	SPCResource = "secretproviderclasses"
	SPCCRDName  = SPCResource + "." + SPCGroup
)

// SecretProviderClassName is the SecretProviderClass of a keyvaultCsi
// connection. SecretProviderClass names are DNS subdomains (253 characters),
// so the long suffix always fits.
func SecretProviderClassName(id string) string { return "sc-" + id + "-secretproviderclass" }

// ownerLabels marks an object as sc-extension's and names its connection.
func ownerLabels(id string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedByValue, LabelConnection: id}
}
