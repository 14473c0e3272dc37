package bind

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// managesAny reports whether manager holds an entry in managedFields: the
// API server drops an entry once its manager owns nothing.
func managesAny(mf []metav1.ManagedFieldsEntry, manager string) bool {
	for _, e := range mf {
		if e.Manager == manager && e.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

// owns reports whether manager's apply entry holds the field at path, each
// element spelled as in FieldsV1 ("f:spec", `k:{"name":"app"}`).
func owns(mf []metav1.ManagedFieldsEntry, manager string, path ...string) bool {
	for _, e := range mf {
		if e.Manager != manager || e.Operation != metav1.ManagedFieldsOperationApply || e.FieldsV1 == nil {
			continue
		}
		var node map[string]json.RawMessage
		if json.Unmarshal(e.FieldsV1.Raw, &node) != nil {
			continue
		}
		found := true
		for _, p := range path {
			raw, ok := node[p]
			if !ok {
				found = false
				break
			}
			node = nil
			if json.Unmarshal(raw, &node) != nil {
				found = false
				break
			}
		}
		if found {
			return true
		}
	}
	return false
}

// fieldPath spells a path of plain field names as FieldsV1 does.
func fieldPath(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "f:" + n
	}
	return out
}

// keyed spells the element of a map list keyed by name.
func keyed(name string) string {
	b, _ := json.Marshal(map[string]string{"name": name})
	return "k:" + string(b)
}
