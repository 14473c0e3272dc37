package eso

import (
	"maps"
	"slices"

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
// holding data (remote key -> value).
//
// ESO v0.16.2's fake provider copies the whole store into a map shared by
// every reconcile, without a lock, each time a reconcile asks for a
// client; with --concurrent above 1 that can end the process ("fatal
// error: concurrent map writes"). A store of few keys makes the window
// small; it does not close it (see Process and the benchmark's restarts).
func FakeClusterSecretStore(name string, data map[string]string) *unstructured.Unstructured {
	var entries []any
	for _, k := range slices.Sorted(maps.Keys(data)) {
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
// ExternalSecret, holding every key of the JSON object stored under
// remoteKey in the ClusterSecretStore store (dataFrom extract). Everything
// else is ESO's default (refresh every hour, merge policy Replace).
func ExternalSecret(ns, name, store, target, remoteKey string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       "ExternalSecret",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"secretStoreRef": map[string]any{"name": store, "kind": "ClusterSecretStore"},
			"target":         map[string]any{"name": target, "creationPolicy": "Owner"},
			"dataFrom":       []any{map[string]any{"extract": map[string]any{"key": remoteKey}}},
		},
	}}
}
