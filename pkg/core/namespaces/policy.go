package namespaces

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// ErrNotAllowed is matched (errors.Is) by every refusal of Policy.Allows;
// the error's text says which rule refused the namespace.
var ErrNotAllowed = errors.New("namespace not allowed")

// ErrInvalidPolicy: a watch or denied entry can never name a namespace.
var ErrInvalidPolicy = errors.New("invalid namespace policy")

// ReasonDenied is the status reason of a connection whose namespace the
// policy refuses, written by the intake (a rejected request) and by sc-job
// (a stored record it will not render).
const ReasonDenied = "NamespaceDenied"

// system are the namespaces Kubernetes itself runs in. Writing a Secret or
// ServiceAccount there is a path to the cluster's own credentials, so no
// setting allows it.
var system = []string{"kube-system", "kube-public", "kube-node-lease"}

// System returns the namespaces every policy denies besides Release.
func System() []string { return slices.Clone(system) }

// Policy says which namespaces connections may target. The zero value
// denies the system namespaces and allows every other one.
type Policy struct {
	// Release is the extension's own namespace (the agent's --namespace),
	// always denied.
	Release string
	// Watch, when not empty, is the only namespaces allowed.
	Watch []string
	// Denied namespaces are never allowed, even when Watch lists them.
	Denied []string
}

// Allows returns nil when a connection may render into ns, or an error
// wrapping ErrNotAllowed that names the rule refusing it. Denials win over
// the watch list: a namespace both watched and denied is denied.
func (p Policy) Allows(ns string) error {
	switch {
	case ns == "":
		return fmt.Errorf("%w: no namespace given", ErrNotAllowed)
	case ns == p.Release:
		return fmt.Errorf("%w: %q is the extension's own namespace, which holds the connections' credentials", ErrNotAllowed, ns)
	case slices.Contains(system, ns):
		return fmt.Errorf("%w: %q is a Kubernetes system namespace", ErrNotAllowed, ns)
	case slices.Contains(p.Denied, ns):
		return fmt.Errorf("%w: %q is in deniedNamespaces", ErrNotAllowed, ns)
	case len(p.Watch) > 0 && !slices.Contains(p.Watch, ns):
		return fmt.Errorf("%w: %q is not in watchNamespaces (%s)", ErrNotAllowed, ns, strings.Join(p.Watch, ", "))
	}
	return nil
}

// dnsLabel is a Kubernetes namespace name (RFC 1123 label).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Validate rejects entries that can never match a namespace: a typo such
// as "Team-A" in Watch would otherwise refuse every request silently.
func (p Policy) Validate() error {
	var errs []error
	check := func(field, ns string) {
		if len(ns) > 63 || !dnsLabel.MatchString(ns) {
			errs = append(errs, fmt.Errorf("%s: %q is not a namespace name (lowercase letters, digits and '-', at most 63 characters)", field, ns))
		}
	}
	if p.Release != "" {
		check("release namespace", p.Release)
	}
	for _, ns := range p.Watch {
		check("watchNamespaces", ns)
	}
	for _, ns := range p.Denied {
		check("deniedNamespaces", ns)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidPolicy, errors.Join(errs...))
	}
	return nil
}
