package apply

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// object is every rendered kind: typed Secrets and ServiceAccounts, and
// unstructured SecretProviderClasses.
type object interface {
	metav1.Object
	runtime.Object
}

// objectClient is the part of a namespaced client the shared paths use. The
// typed clients satisfy it as they are; the dynamic one through spcClient.
type objectClient[T object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// kind is what differs between the rendered kinds; write and remove do the
// rest (ownership, the no-op check, FieldManager, conflict retries) once.
type kind[T object] struct {
	name string // render.KindSecret, ...
	// shared objects serve several connections (a workload-identity
	// ServiceAccount) and carry no connection label to check.
	shared bool
	// liveHash recomputes the data hash from what the object holds, so a
	// hand edit is repaired even when the annotation still matches.
	liveHash func(T) string
	// same checks what neither hash nor metadata covers; nil means nothing.
	same func(cur, want T) bool
	// setContent copies want's content into next, a copy of the live object
	// whose labels and annotations are already merged.
	setContent func(next, want T)
}

func (k kind[T]) info() kindInfo { return kindInfo{shared: k.shared} }

var secretKind = kind[*corev1.Secret]{
	name:     render.KindSecret,
	liveHash: func(s *corev1.Secret) string { return render.DataHash(s.Data) },
	same:     func(cur, want *corev1.Secret) bool { return cur.Type == want.Type },
	setContent: func(next, want *corev1.Secret) {
		next.Data, next.StringData = want.Data, nil
	},
}

var serviceAccountKind = kind[*corev1.ServiceAccount]{
	name:     render.KindServiceAccount,
	shared:   true,
	liveHash: func(sa *corev1.ServiceAccount) string { return render.ServiceAccountHash(sa) },
	setContent: func(next, want *corev1.ServiceAccount) {
		// merged keeps others' keys, but a tenant id we no longer render is ours to drop.
		if _, ok := want.Annotations[render.AnnotationWITenantID]; !ok {
			delete(next.Annotations, render.AnnotationWITenantID)
		}
	},
}

var spcKind = kind[*unstructured.Unstructured]{
	name:     render.KindSecretProviderClass,
	liveHash: render.SecretProviderClassHash,
	setContent: func(next, want *unstructured.Unstructured) {
		next.Object["spec"] = runtime.DeepCopyJSONValue(want.Object["spec"])
	},
}

// spcClient gives a dynamic resource client the typed clients' method set
// (the dynamic methods take trailing subresources).
type spcClient struct{ ri dynamic.ResourceInterface }

func (c spcClient) Get(ctx context.Context, name string, opts metav1.GetOptions) (*unstructured.Unstructured, error) {
	return c.ri.Get(ctx, name, opts)
}

func (c spcClient) Create(ctx context.Context, u *unstructured.Unstructured, opts metav1.CreateOptions) (*unstructured.Unstructured, error) {
	return c.ri.Create(ctx, u, opts)
}

func (c spcClient) Update(ctx context.Context, u *unstructured.Unstructured, opts metav1.UpdateOptions) (*unstructured.Unstructured, error) {
	return c.ri.Update(ctx, u, opts)
}

func (c spcClient) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return c.ri.Delete(ctx, name, opts)
}

func (a *Applier) secrets(ns string) objectClient[*corev1.Secret] {
	return a.client.CoreV1().Secrets(ns)
}

func (a *Applier) serviceAccounts(ns string) objectClient[*corev1.ServiceAccount] {
	return a.client.CoreV1().ServiceAccounts(ns)
}

func (a *Applier) spcs(ns string) objectClient[*unstructured.Unstructured] {
	return spcClient{ri: a.dynamic.Resource(SPCResource).Namespace(ns)}
}
