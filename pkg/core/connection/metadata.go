package connection

// The vocabulary sc-extension stamps on every object it writes. One
// definition, so that "ours" means the same thing to the store, sc-job, the
// launcher, the drift watcher and the chart's selectors.
const (
	// LabelManagedBy=ManagedByValue marks every object sc-extension owns;
	// an object without it is never modified.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "sc-extension"
	// LabelConnection carries the connection's object id (ObjectID).
	LabelConnection = "servicelinker.sc-extension.io/connection"
	// AnnotationConnectionName keeps the name as the user gave it.
	AnnotationConnectionName = "servicelinker.sc-extension.io/connection-name"
	// AnnotationDataHash is the sha256 of what sc-job wrote; a write whose
	// hash already matches is skipped, and a mismatch is drift.
	AnnotationDataHash = "servicelinker.sc-extension.io/data-hash"
	// FieldManager names sc-extension's writes in managedFields.
	FieldManager = "sc-extension"
)
