package heartbeat

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
)

// PhaseUnknown counts records whose phase the agent cannot tell: not
// decodable, or cached without a summary.
const PhaseUnknown = "Unknown"

// CountPhases counts the leader's cached records by phase, from the
// summaries its records informer attaches (recordcache.Attach): no record
// is decoded or read again for a heartbeat.
func CountPhases(records []*corev1.ConfigMap) map[string]int {
	if len(records) == 0 {
		return nil
	}
	out := make(map[string]int, 4)
	for _, cm := range records {
		v, ok := recordcache.Attached(cm)
		switch {
		case !ok, v.Err != nil, v.Phase == "":
			out[PhaseUnknown]++
		default:
			out[string(v.Phase)]++
		}
	}
	return out
}
