package apply

import (
	"context"
	"maps"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/kube/conflict"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// write creates want, updates the live object to want's content, or writes
// nothing when the live object already matches. An object that is not
// sc-extension's for own (see Applier.owns) is refused, never overwritten.
// It returns the UID of the object it leaves in place, for own's record.
func write[T object](ctx context.Context, a *Applier, k kind[T], c objectClient[T], own Owner, want T) (Outcome, string, error) {
	r := ref(k.name, want.GetNamespace(), want.GetName())
	if k.shared {
		// Two workers rendering connections that share the object must not
		// both find it missing: the loser's create would meet an object
		// whose UID the winner has not remembered yet, and refuse it.
		defer a.lock(r)()
	}
	var (
		out Outcome
		uid string
	)
	err := conflict.Retry(conflictBackoff, conflicting, func() error {
		cur, err := c.Get(ctx, want.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out = Created
			// The token is stamped on create only: want, and so the no-op
			// check, never carries it, so an existing object is not
			// rewritten just to gain it, and an update keeps it (merged).
			got, err := c.Create(ctx, stamped(want, own, r), metav1.CreateOptions{FieldManager: FieldManager})
			if err != nil {
				return err
			}
			uid = string(got.GetUID())
			a.created(r, uid)
			return nil
		}
		if err != nil {
			return err
		}
		// A create that lost a race (AlreadyExists) re-reads and lands
		// here: whoever won it, the object is judged like any other.
		if err := a.owns(k.info(), own, r, cur); err != nil {
			return err
		}
		uid = string(cur.GetUID())
		if upToDate(k, cur, want) {
			out = Unchanged
			return nil
		}
		// A fresh copy of what was just read: a conflict re-reads, it never
		// resends a stale object.
		next := cur.DeepCopyObject().(T)
		next.SetLabels(merged(cur.GetLabels(), want.GetLabels()))
		next.SetAnnotations(merged(cur.GetAnnotations(), want.GetAnnotations()))
		k.setContent(next, want)
		out = Updated
		_, err = c.Update(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return out, "", wrapAPI("write", r, err)
	}
	return out, uid, nil
}

// upToDate: the data-hash annotation matches, the content still hashes to
// it (no hand edit), and our labels and annotations are all present.
func upToDate[T object](k kind[T], cur, want T) bool {
	hash := want.GetAnnotations()[render.AnnotationDataHash]
	return cur.GetAnnotations()[render.AnnotationDataHash] == hash && k.liveHash(cur) == hash &&
		subset(want.GetLabels(), cur.GetLabels()) && subset(want.GetAnnotations(), cur.GetAnnotations()) &&
		(k.same == nil || k.same(cur, want))
}

// conflicting errors are retried from a fresh read: a create that lost a
// race surfaces as AlreadyExists, an update from a stale copy as Conflict.
func conflicting(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }

func subset(want, have map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// merged keeps keys others added (a reloader's annotation, say) and sets ours.
func merged(cur, want map[string]string) map[string]string {
	out := make(map[string]string, len(cur)+len(want))
	maps.Copy(out, cur)
	maps.Copy(out, want)
	return out
}
