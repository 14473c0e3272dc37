package connection

// Change is an accepted request in domain terms: what the agent hands to the
// store once a request has been decoded, unsealed and validated.
type Change struct {
	RequestID string
	Spec      Spec
	// Credentials are the credential values of Spec's credential
	// configurations; empty for a delete.
	Credentials Credentials
	// Delete marks the connection for deletion instead of updating it.
	Delete bool
	// DeleteResources (with Delete) also removes the rendered objects.
	DeleteResources bool
}
