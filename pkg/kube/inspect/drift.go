package inspect

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// DriftOf reports whether a rendered object no longer is what sc-job wrote:
// the managed-by label or the data-hash annotation was removed, or the
// content no longer hashes to the annotation. data is a Secret's data (nil
// for other kinds). The reason names what changed, never a value.
func DriftOf(obj metav1.Object, data map[string][]byte) (drifted bool, reason string) {
	if obj.GetLabels()[render.LabelManagedBy] != render.ManagedByValue {
		return true, "label " + render.LabelManagedBy + "=" + render.ManagedByValue + " was removed"
	}
	want, ok := obj.GetAnnotations()[render.AnnotationDataHash]
	if !ok || want == "" {
		return true, "annotation " + render.AnnotationDataHash + " was removed"
	}
	var got, what string
	switch o := obj.(type) {
	case *corev1.ServiceAccount:
		got, what = render.ServiceAccountHash(o), "workload identity annotations"
	case *unstructured.Unstructured:
		got, what = render.SecretProviderClassHash(o), "spec"
	default:
		got, what = render.DataHash(data), "data"
	}
	if got != want {
		return true, what + " changed since sc-job rendered it (hash mismatch)"
	}
	return false, ""
}
