package render

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sort"
)

// DataHash is the canonical hash of a Secret's data: keys sorted, every key
// and value length-prefixed so that no two different maps share an encoding.
// pkg/kube/inspect and the drift watcher recompute it from what is in the cluster.
func DataHash(data map[string][]byte) string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	var n [8]byte
	for _, k := range keys {
		binary.BigEndian.PutUint64(n[:], uint64(len(k)))
		h.Write(n[:])
		h.Write([]byte(k))
		binary.BigEndian.PutUint64(n[:], uint64(len(data[k])))
		h.Write(n[:])
		h.Write(data[k])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// StringHash hashes string maps (ServiceAccount annotations, SecretProviderClass
// parameters) the same way.
func StringHash(m map[string]string) string {
	b := make(map[string][]byte, len(m))
	for k, v := range m {
		b[k] = []byte(v)
	}
	return DataHash(b)
}
