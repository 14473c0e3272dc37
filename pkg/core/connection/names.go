package connection

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// MaxIDLength bounds the derived object id so that the longest name built from
// it, "sc-conn-<id>-cred", still fits a 63-character DNS-1123 label.
const MaxIDLength = 63 - len("sc-conn-") - len("-cred")

// hashLen is the number of hex digits of SHA-256 appended when sanitising
// changed a name: 40 bits keeps a collision among one cluster's connections
// out of reach while leaving room for a readable prefix.
const hashLen = 10

// ObjectID maps a connection name (letters, digits, '.', '_', any case) to a
// DNS-1123 label of at most MaxIDLength characters.
//
// Why it is collision-free: a name that is already a lowercase alphanumeric
// string maps to itself, and such an id never contains '-' because valid names
// cannot. Every other name maps to "<sanitised prefix>-<hash>", which always
// contains '-', so the two classes never meet, and within the second class two
// names share an id only if their SHA-256 prefixes collide.
func ObjectID(name string) string {
	if name != "" && len(name) <= MaxIDLength && isLowerAlnum(name) {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := hex.EncodeToString(sum[:])[:hashLen]
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	prefix := strings.Trim(collapseDashes(b.String()), "-")
	if max := MaxIDLength - hashLen - 1; len(prefix) > max {
		prefix = strings.TrimRight(prefix[:max], "-")
	}
	if prefix == "" {
		return "x-" + suffix
	}
	return prefix + "-" + suffix
}

// ConfigMapName is the sc-system ConfigMap holding a connection's metadata.
func ConfigMapName(id string) string { return "sc-conn-" + id }

// CredentialSecretName is the sc-system Secret holding a connection's credential values.
func CredentialSecretName(id string) string { return "sc-conn-" + id + "-cred" }

// SecretName is the Secret rendered into the target namespace.
func SecretName(id string) string { return "sc-" + id + "-secret" }

// ServiceAccountName is the workload-identity ServiceAccount shared by every
// connection using the same client id in one namespace. Client ids are GUIDs;
// lowercasing keeps the name DNS-1123 valid.
func ServiceAccountName(clientID string) string { return "sc-account-" + strings.ToLower(clientID) }

func isLowerAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func collapseDashes(s string) string {
	for strings.Contains(s, "--") {
		s = strings.ReplaceAll(s, "--", "-")
	}
	return s
}
