package drift

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
)

// ClaimsIndex names drift's index on the records informer: each record is
// filed under every Secret and ServiceAccount its status lists, as
// objectKey.String() ("Secret team-a/sc-x-secret"), whatever its phase. An
// event on a rendered object then finds the records claiming it with one
// map lookup instead of decoding every record.
const ClaimsIndex = "drift.sc-extension.io/claims"

// claimKeys is ClaimsIndex's keys, from the version recordcache decoded
// (once for every controller on the informer): an undecodable record
// claims nothing.
func claimKeys(_ *corev1.ConfigMap, v recordcache.Version) []string {
	if v.Err != nil {
		return nil
	}
	var keys []string
	for _, r := range v.Resources {
		if r.Kind == KindSecret || r.Kind == KindServiceAccount {
			keys = append(keys, objectKey{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}.String())
		}
	}
	return keys
}
