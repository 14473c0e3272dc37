package render

// The vocabulary sc-extension stamps on every object it owns. pkg/store,
// pkg/apply and pkg/inspect share these so that "ours" means the same thing
// everywhere.
const (
	LabelManagedBy  = "app.kubernetes.io/managed-by"
	ManagedByValue  = "sc-extension"
	LabelConnection = "servicelinker.sc-extension.io/connection"
	// AnnotationDataHash is the sha256 of what sc-job wrote; a write whose
	// hash already matches is skipped, and a mismatch is drift.
	AnnotationDataHash = "servicelinker.sc-extension.io/data-hash"

	AnnotationWIClientID = "azure.workload.identity/client-id"
	AnnotationWITenantID = "azure.workload.identity/tenant-id"
	LabelWIUse           = "azure.workload.identity/use"
)

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
