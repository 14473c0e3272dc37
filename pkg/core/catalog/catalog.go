package catalog

import (
	"slices"
	"strings"
)

// Keys returns the ordered configuration keys that target t with auth a and
// client c yields, before customizedKeys are applied. For keyvaultCsi it
// returns an empty list: that combination renders a SecretProviderClass, not
// Secret keys. Any other combination outside the table returns an error
// wrapping ErrUnsupported that names what is supported instead.
func Keys(t TargetType, a AuthType, c ClientType) ([]Key, error) {
	names, err := keyNames(t, a, c)
	if err != nil {
		return nil, err
	}
	e := lookup(t)
	keys := make([]Key, len(names))
	for i, n := range names {
		keys[i] = Key{Name: n, Credential: IsCredential(n), Description: describe(e.prefix, n)}
	}
	return keys, nil
}

func keyNames(t TargetType, a AuthType, c ClientType) ([]string, error) {
	e := lookup(t)
	if e == nil {
		return nil, unsupportedf("unknown target type %q; valid: %s", t, join(Targets()))
	}
	if !slices.Contains(AuthTypes(t), a) {
		return nil, unsupportedf("%s does not support auth type %q; supported: %s", t, a, join(AuthTypes(t)))
	}
	if c == "" {
		c = ClientNone
	}
	for _, r := range e.rules {
		if !slices.Contains(r.clients, c) {
			continue
		}
		if names, ok := r.names(a); ok {
			out := make([]string, len(names))
			for i, n := range names {
				out[i] = expand(e.prefix, n)
			}
			return out, nil
		}
	}
	return nil, unsupportedf("%s with auth type %q does not support client type %q; supported: %s",
		t, a, c, join(ClientTypes(t, a)))
}

// names returns the rule's relative key names for a, and whether a is supported.
func (r rule) names(a AuthType) ([]string, bool) {
	switch a {
	case AuthSecret:
		return r.secret, r.secret != nil
	case AuthWorkloadIdentity:
		return r.identity, r.identity != nil
	case AuthServicePrincipal:
		if r.sp != nil {
			return r.sp, true
		}
		if r.identity == nil {
			return nil, false
		}
		return append(slices.Clone(r.identity), "_CLIENTSECRET", "_TENANTID"), true
	case AuthKeyvaultCSI:
		return []string{}, r.csi
	}
	return nil, false
}

func expand(prefix, name string) string {
	if strings.HasPrefix(name, "_") {
		return prefix + name
	}
	return name
}

func describe(prefix, name string) string {
	if rest, ok := strings.CutPrefix(name, prefix+"_"); ok {
		return descriptions[rest]
	}
	return descriptions[name[strings.LastIndex(name, ".")+1:]]
}

func lookup(t TargetType) *entry {
	for i := range table {
		if table[i].target == t {
			return &table[i]
		}
	}
	return nil
}

// Targets returns every target type, in catalog order.
func Targets() []TargetType {
	out := make([]TargetType, len(table))
	for i, e := range table {
		out[i] = e.target
	}
	return out
}

// AuthTypes returns the auth types t supports with at least one client type,
// in canonical order; nil for an unknown target.
func AuthTypes(t TargetType) []AuthType {
	e := lookup(t)
	if e == nil {
		return nil
	}
	var out []AuthType
	for _, a := range allAuthTypes {
		for _, r := range e.rules {
			if _, ok := r.names(a); ok {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// ClientTypes returns the client types t supports with auth a, in canonical order.
func ClientTypes(t TargetType, a AuthType) []ClientType {
	e := lookup(t)
	if e == nil {
		return nil
	}
	var out []ClientType
	for _, c := range allClientTypes {
		for _, r := range e.rules {
			if _, ok := r.names(a); ok && slices.Contains(r.clients, c) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// SupportRow is one line of `scctl connection list-support-types`.
type SupportRow struct {
	Target      TargetType
	AuthTypes   []AuthType
	ClientTypes []ClientType // supported with at least one of AuthTypes
}

// SupportTable returns one row per target, in catalog order.
func SupportTable() []SupportRow {
	rows := make([]SupportRow, 0, len(table))
	for _, t := range Targets() {
		row := SupportRow{Target: t, AuthTypes: AuthTypes(t)}
		for _, c := range allClientTypes {
			for _, a := range row.AuthTypes {
				if slices.Contains(ClientTypes(t, a), c) {
					row.ClientTypes = append(row.ClientTypes, c)
					break
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// Prefix returns the key prefix of a target, e.g. storage-blob ->
// "AZURE_STORAGEBLOB", cognitiveservices -> "AZURE_OPENAI"; "" if unknown.
func Prefix(t TargetType) string {
	if e := lookup(t); e != nil {
		return e.prefix
	}
	return ""
}

// credentialSuffixes is PRODUCT.md's credential rule, plus the spellings that
// Spring property names take once '.' and '-' read as '_' (account-key,
// client-secret, connection-string).
var credentialSuffixes = []string{"CONNECTIONSTRING", "KEY", "PASSWORD", "CLIENTSECRET", "CONNECTION_STRING", "CLIENT_SECRET"}

// IsCredential reports whether a key holds a secret: its name ends in
// _CONNECTIONSTRING, _KEY, _PASSWORD or _CLIENTSECRET (or is one of those
// words). Callers apply it to the ORIGINAL key name, before customizedKeys,
// so renaming a key never un-hides it.
//
// The match ignores case and reads '.' and '-' as '_', so that Spring names
// such as spring.datasource.password or ...account-key are credentials too.
// That widens PRODUCT.md's rule on purpose: a wrongly hidden value costs a
// lookup, a wrongly shown one leaks a secret.
func IsCredential(key string) bool {
	n := strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
	for _, s := range credentialSuffixes {
		if n == s || strings.HasSuffix(n, "_"+s) {
			return true
		}
	}
	return false
}
