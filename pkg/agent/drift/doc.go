// Package drift watches the Secrets and ServiceAccounts sc-job rendered and
// puts a connection back to Pending when one of its objects is deleted,
// edited, or replaced (a same-named object whose UID is not the one its
// record holds) outside sc-extension, so that sc-job renders it again or
// says why it will not. It reacts to watch events only; it never polls the
// API server. It watches only namespaces the namespace policy allows. Its
// watches carry metadata only, because the managed-by label they select on
// is one any tenant can set: an object is read in full only when it changed
// and a settled connection's record claims it.
package drift
