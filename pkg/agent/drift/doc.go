// Package drift watches the Secrets and ServiceAccounts sc-job rendered and
// puts a connection back to Pending when one of its objects is deleted or
// edited outside sc-extension, so that sc-job renders it again. It reacts
// to watch events only; it never polls the API server.
package drift
