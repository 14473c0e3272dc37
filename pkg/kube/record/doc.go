// Package record is the on-cluster layout of a connection record: how a
// connection is encoded into, and decoded from, ConfigMap sc-conn-<id> in the
// extension's namespace, and the labels and annotation that mark a record
// and its companion credential Secret as sc-extension's. It does no I/O;
// pkg/kube/store reads and writes records, the agent's controllers decode
// them from their informer caches.
//
// Layout of ConfigMap sc-conn-<id> (data keys, all human readable):
//
//	schemaVersion          decimal SchemaVersion of the layout; absent means 1
//	spec                   JSON connection.Spec (never a credential value)
//	generation             decimal; bumped when spec or credentials change
//	credentialsVersion     id of the request whose credential values the Secret holds
//	deletion               JSON connection.Deletion, present while a delete is pending
//	status                 JSON connection.Status (incl. attempts, retryAfter, lastFailure,
//	                       and owned: the UID of each object sc-job created, the only
//	                       proof an object in a target namespace is sc-extension's)
//	recentRequestIds       JSON list of the request ids applied, oldest first
//
// Both objects carry the labels connection.LabelManagedBy=sc-extension and
// connection.LabelConnection=<id>, and the annotation
// connection.AnnotationConnectionName with the connection's own name.
// The record also carries the finalizer Finalizer: deleting it leaves it
// terminating until the leading agent has published its Deleted status.
// Secret sc-conn-<id>-cred holds one data key per credential configuration
// and the annotations VersionAnnotation and SchemaAnnotation.
//
// A record or Secret of a newer schema than SchemaVersion is neither
// decoded nor written (ErrUnsupportedVersion); an older one is migrated by
// its next ordinary write. See docs/store.md, "Schema version".
package record
