package connection

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
)

// ErrInvalid is matched (errors.Is) by every validation failure, so callers
// can tell "retrying will never help" from transient errors.
var ErrInvalid = errors.New("invalid connection")

// MaxNameLength is the longest connection name accepted, as in Azure.
const MaxNameLength = 100

// FieldError names the offending field in JSON path form and why it is wrong.
// It never quotes a credential value.
type FieldError struct {
	Field  string
	Reason string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidationError is every FieldError found, in field order.
type ValidationError []FieldError

func (v ValidationError) Error() string {
	parts := make([]string, len(v))
	for i, e := range v {
		parts[i] = e.Error()
	}
	return ErrInvalid.Error() + ": " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (v ValidationError) Is(target error) bool { return target == ErrInvalid }

var (
	nameRE      = regexp.MustCompile(`^[A-Za-z0-9._]+$`)
	dnsLabelRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	guidRE      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	secretKeyRE = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	subdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// MaxBoundWorkloads caps a binding: each bound workload is a server-side
// apply and a possible rollout in every sc-job run of the connection.
const MaxBoundWorkloads = 16

// Kubernetes name limits: an object name is a DNS-1123 subdomain, a
// container name a DNS-1123 label.
const (
	maxSubdomainLength = 253
	maxLabelLength     = 63
)

// reservedLabelPrefix is ours: user labels may not impersonate sc-extension's
// ownership markers, or the ownership check would be meaningless.
const reservedLabelPrefix = "servicelinker.sc-extension.io/"

type checker struct{ errs ValidationError }

func (c *checker) add(field, format string, args ...any) {
	c.errs = append(c.errs, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// ValidateName checks a connection name on its own (delete and show take only a name).
func ValidateName(name string) error {
	var c checker
	c.name(name)
	if len(c.errs) > 0 {
		return c.errs
	}
	return nil
}

func (c *checker) name(name string) {
	switch {
	case name == "":
		c.add("name", "is required")
	case len(name) > MaxNameLength:
		c.add("name", "is %d characters long; at most %d are allowed", len(name), MaxNameLength)
	case !nameRE.MatchString(name):
		c.add("name", "may contain only letters, digits, '.' and '_'")
	}
}

// Validate checks a spec and its credential values together: every key the
// catalog requires is present, credential keys carry their value only in
// creds, and nothing unsupported is asked for.
func Validate(s Spec, creds Credentials) error {
	var c checker
	c.name(s.Name)
	if !dnsLabelRE.MatchString(s.Scope) || len(s.Scope) > 63 {
		c.add("scope", "must be a Kubernetes namespace name (lowercase letters, digits and '-', at most 63 characters)")
	}
	if _, err := catalog.ParseTarget(string(s.TargetService.Type)); err != nil {
		c.add("targetService.type", "%v", err)
		return c.errs // nothing below is checkable without a known target
	}
	if strings.TrimSpace(s.TargetService.ID) == "" {
		c.add("targetService.id", "is required")
	}
	c.auth(s.AuthInfo)
	keys, err := catalog.Keys(s.TargetService.Type, s.AuthInfo.AuthType, s.ClientType)
	if err != nil {
		c.add("authInfo.authType", "%v", err)
		return c.errs
	}
	c.configurations(s, keys, creds)
	c.customizedKeys(s)
	c.metadata("labels", s.Labels)
	c.metadata("annotations", s.Annotations)
	c.binding(s.AuthInfo.AuthType, s.Binding)
	if len(c.errs) > 0 {
		return c.errs
	}
	return nil
}

func (c *checker) auth(a AuthInfo) {
	switch a.AuthType {
	case catalog.AuthWorkloadIdentity:
		c.guid("authInfo.clientId", a.ClientID, true)
		c.guid("authInfo.tenantId", a.TenantID, false)
	case catalog.AuthServicePrincipal:
		c.guid("authInfo.clientId", a.ClientID, true)
		c.guid("authInfo.tenantId", a.TenantID, true)
	}
	c.guid("authInfo.subscriptionId", a.SubscriptionID, false)
}

func (c *checker) guid(field, v string, required bool) {
	switch {
	case v == "" && required:
		c.add(field, "is required for this auth type")
	case v != "" && !guidRE.MatchString(v):
		c.add(field, "must be a GUID such as 00000000-0000-0000-0000-000000000000")
	}
}

func (c *checker) configurations(s Spec, keys []catalog.Key, creds Credentials) {
	present := map[string]bool{}
	for i, cfg := range s.Configurations {
		field := fmt.Sprintf("configurations[%d]", i)
		switch {
		case !secretKeyRE.MatchString(cfg.Name):
			c.add(field+".name", "must consist of letters, digits, '-', '_' or '.'")
			continue
		case present[cfg.Name]:
			c.add(field+".name", "%s appears more than once", cfg.Name)
			continue
		}
		present[cfg.Name] = true
		isCred := catalog.IsCredential(cfg.Name)
		switch {
		case cfg.Credential != isCred:
			c.add(field+".credential", "must be %t for %s", isCred, cfg.Name)
		case isCred && cfg.Value != "":
			c.add(field+".value", "%s is a credential: its value must travel sealed, never in the clear", cfg.Name)
		case isCred && creds[cfg.Name] == "":
			c.add("credentials."+cfg.Name, "is required: %s is a credential key without a value", cfg.Name)
		}
	}
	for _, k := range keys {
		if !present[k.Name] {
			c.add("configurations", "%s is required for %s with %s", k.Name, s.TargetService.Type, s.AuthInfo.AuthType)
		}
	}
	for _, name := range sortedKeys(creds) {
		if !present[name] || !catalog.IsCredential(name) {
			c.add("credentials."+name, "has no matching credential configuration")
		}
	}
}

func (c *checker) customizedKeys(s Spec) {
	names := map[string]bool{}
	for _, cfg := range s.Configurations {
		names[cfg.Name] = true
	}
	rendered := map[string]string{}
	for _, cfg := range s.Configurations {
		out := s.RenderedKey(cfg.Name)
		if prev, ok := rendered[out]; ok {
			c.add("customizedKeys."+cfg.Name, "renders to %s, which %s also renders to", out, prev)
		}
		rendered[out] = cfg.Name
	}
	for _, from := range sortedKeys(s.CustomizedKeys) {
		to := s.CustomizedKeys[from]
		if !names[from] {
			c.add("customizedKeys."+from, "is not one of the connection's configuration keys")
		}
		if !secretKeyRE.MatchString(to) {
			c.add("customizedKeys."+from, "new name must consist of letters, digits, '-', '_' or '.'")
		}
	}
}

func (c *checker) metadata(field string, m map[string]string) {
	for _, k := range sortedKeys(m) {
		if strings.HasPrefix(k, reservedLabelPrefix) || k == "app.kubernetes.io/managed-by" {
			c.add(field+"."+k, "is reserved for sc-extension")
		}
	}
}

// sortedKeys keeps error messages in a stable order across runs.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *checker) binding(auth catalog.AuthType, b *Binding) {
	if b == nil {
		return
	}
	if auth == catalog.AuthKeyvaultCSI {
		// Checked first and alone: nothing else about the binding matters
		// when there is nothing to bind.
		c.add("binding", "is not supported with auth type %s: it renders a SecretProviderClass, no Secret to bind; mount it with the Secret Store CSI driver instead", auth)
		return
	}
	switch b.Mode {
	case "", BindingEnv, BindingVolume:
	default:
		c.add("binding.mode", "must be %s or %s (empty means %s)", BindingEnv, BindingVolume, BindingEnv)
	}
	switch n := len(b.Workloads); {
	case n == 0:
		c.add("binding.workloads", "at least one workload is required")
	case n > MaxBoundWorkloads:
		c.add("binding.workloads", "has %d workloads; at most %d are allowed", n, MaxBoundWorkloads)
	}
	type ref struct {
		kind WorkloadKind
		name string
	}
	seen := map[ref]int{}
	for i, w := range b.Workloads {
		field := fmt.Sprintf("binding.workloads[%d]", i)
		if !w.Kind.Known() {
			c.add(field+".kind", "must be one of %s", kindList())
		}
		switch {
		case w.Name == "":
			c.add(field+".name", "is required")
		case len(w.Name) > maxSubdomainLength:
			c.add(field+".name", "is %d characters long; at most %d are allowed", len(w.Name), maxSubdomainLength)
		case !subdomainRE.MatchString(w.Name):
			c.add(field+".name", "must be a Kubernetes object name (lowercase letters, digits, '-' and '.')")
		default:
			key := ref{w.Kind, w.Name}
			if prev, ok := seen[key]; ok {
				c.add(field, "%s/%s is already bound by binding.workloads[%d]; list each workload once", w.Kind, w.Name, prev)
			} else {
				seen[key] = i
			}
		}
		c.containers(field, w.Containers)
	}
}

func (c *checker) containers(field string, names []string) {
	seen := map[string]bool{}
	for j, name := range names {
		f := fmt.Sprintf("%s.containers[%d]", field, j)
		switch {
		case len(name) > maxLabelLength || !dnsLabelRE.MatchString(name):
			c.add(f, "must be a container name (lowercase letters, digits and '-', at most %d characters)", maxLabelLength)
		case seen[name]:
			c.add(f, "%s appears more than once", name)
		}
		seen[name] = true
	}
}

func kindList() string {
	names := make([]string, len(WorkloadKinds))
	for i, k := range WorkloadKinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}
