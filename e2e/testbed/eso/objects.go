package eso

import (
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The ESO APIs the benchmark writes, at the version v0.16.2 stores.
var (
	ClusterSecretStores = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "clustersecretstores"}
	ExternalSecrets     = schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"}
)

// LabelManaged is the label ESO puts on every Secret an ExternalSecret
// owns (esv1.LabelManaged), with value "true".
const LabelManaged = "reconcile.external-secrets.io/managed"

const apiVersion = "external-secrets.io/v1"

// FakeClusterSecretStore is a ClusterSecretStore of ESO's fake provider
// holding data (remote key -> value). ESO's fake provider copies the whole
// store into a shared map on every reconcile without a lock, so a store
// of a handful of keys keeps its concurrent reconciles (--concurrent=50)
// from racing on a large map.
func FakeClusterSecretStore(name string, data map[string]string) *unstructured.Unstructured {
	var entries []any
	for _, k := range sortedKeys(data) {
		entries = append(entries, map[string]any{"key": k, "value": data[k]})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       "ClusterSecretStore",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"provider": map[string]any{"fake": map[string]any{"data": entries}},
		},
	}}
}

// ExternalSecret asks ESO for Secret target in namespace ns, owned by the
// ExternalSecret, each key (Secret key -> remote key) read from the
// ClusterSecretStore store. Everything else is ESO's default (refresh every
// hour, merge policy Replace).
func ExternalSecret(ns, name, store, target string, keys map[string]string) *unstructured.Unstructured {
	var data []any
	for _, k := range sortedKeys(keys) {
		data = append(data, map[string]any{"secretKey": k, "remoteRef": map[string]any{"key": keys[k]}})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       "ExternalSecret",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"secretStoreRef": map[string]any{"name": store, "kind": "ClusterSecretStore"},
			"target":         map[string]any{"name": target, "creationPolicy": "Owner"},
			"data":           data,
		},
	}}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
