package cli

import (
	"regexp"
	"slices"
	"strings"
)

// kvKeyRE is what may stand left of '=' in a KEY=VALUE item: configuration
// key names (AZURE_X_Y, spring.cloud.azure...), aliases (connection-string)
// and sub-options (client-id).
var kvKeyRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+=`)

// kvPair is one KEY=VALUE item, in command-line order.
type kvPair struct{ Key, Value string }

// parseKVs reads repeated flags of comma-separated KEY=VALUE items.
//
// Values may contain '=' (base64 keys, connection strings) and even ',':
// a comma starts a new item only when what follows looks like "KEY=", so
// "Endpoint=sb://x/;SharedAccessKey=a,b=" is one value. A segment that is not
// KEY=VALUE and has no item to belong to is an error for the caller to name.
func parseKVs(flag string, values []string) ([]kvPair, error) {
	var out []kvPair
	for _, v := range values {
		start := len(out)
		for _, seg := range strings.Split(v, ",") {
			if kvKeyRE.MatchString(seg) {
				k, val, _ := strings.Cut(seg, "=")
				out = append(out, kvPair{Key: k, Value: val})
				continue
			}
			if len(out) == start {
				return nil, usagef("%s: %q is not KEY=VALUE", flag, redactItem(seg))
			}
			out[len(out)-1].Value += "," + seg
		}
	}
	return out, nil
}

// redactItem keeps a malformed item recognisable without echoing what may
// be a secret the user mistyped.
func redactItem(s string) string {
	if len(s) <= 4 {
		return strings.Repeat("*", len(s))
	}
	return s[:2] + strings.Repeat("*", len(s)-2)
}

// subOptions parses a flag's value of known sub-options (client-id=..,tenant-id=..),
// rejecting unknown and repeated ones.
func subOptions(flag string, values []string, allowed ...string) (map[string]string, error) {
	pairs, err := parseKVs(flag, values)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range pairs {
		if !slices.Contains(allowed, p.Key) {
			return nil, usagef("%s: unknown option %q; valid: %s", flag, p.Key, strings.Join(allowed, ", "))
		}
		if _, dup := out[p.Key]; dup {
			return nil, usagef("%s: %s given more than once", flag, p.Key)
		}
		out[p.Key] = p.Value
	}
	return out, nil
}
