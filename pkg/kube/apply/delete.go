package apply

import (
	"context"
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/conflict"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// InUse reports whether a connection other than the one being deleted
// still renders the ServiceAccount ns/name. The caller derives it from the
// store, so no bookkeeping on the shared object can drift from the truth.
type InUse func(ns, name string) bool

// Delete removes the objects refs name on behalf of own. An object that is
// gone, not ours (Applier.owns: its UID is in no record), or (for a
// ServiceAccount) still in use is kept and counted as Kept: deleting is
// never a reason to touch someone else's object, whatever its labels say.
// Every delete carries the UID proven ours as a precondition (and the
// resourceVersion read), so an object replaced since it was read, by
// anyone, is never removed: the API server refuses it.
func (a *Applier) Delete(ctx context.Context, own Owner, refs []connection.ResourceRef, inUse InUse) (Result, error) {
	var res Result
	for _, r := range refs {
		var (
			o    Outcome
			err  error
			step string
		)
		switch r.Kind {
		case render.KindSecret:
			step = StepDeleteSecret
			o, err = remove(ctx, a, secretKind, a.secrets(r.Namespace), own, r)
		case render.KindServiceAccount:
			step = StepDeleteSA
			if inUse != nil && inUse(r.Namespace, r.Name) {
				o = Kept
				break
			}
			o, err = remove(ctx, a, serviceAccountKind, a.serviceAccounts(r.Namespace), own, r)
		case render.KindSecretProviderClass:
			step = StepDeleteSPC
			o, err = a.deleteSPC(ctx, own, r)
		default:
			continue
		}
		if err != nil {
			return res, stepErr(step, r, err)
		}
		res.add(r, o, "")
	}
	return res, nil
}

func preconditions(uid types.UID, rv string) metav1.DeleteOptions {
	return metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}}
}

// deleteChecked re-reads and retries when a precondition fails: the object
// changed or was replaced since it was read, so ownership is checked again
// before deleting (a replacement's UID is not ours, and it is kept).
func deleteChecked(r connection.ResourceRef, del func() (Outcome, error)) (Outcome, error) {
	var o Outcome
	err := conflict.Retry(conflictBackoff, apierrors.IsConflict, func() error {
		var err error
		o, err = del()
		return err
	})
	if apierrors.IsNotFound(err) {
		return Kept, nil
	}
	if err != nil {
		return Kept, wrapAPI("delete", r, err)
	}
	return o, nil
}

// remove deletes the object r names when it is ours, with preconditions so
// an object replaced or edited since it was read is re-checked first.
func remove[T object](ctx context.Context, a *Applier, k kind[T], c objectClient[T], own Owner, r connection.ResourceRef) (Outcome, error) {
	return deleteChecked(r, func() (Outcome, error) {
		cur, err := c.Get(ctx, r.Name, metav1.GetOptions{})
		if err != nil {
			return Kept, err
		}
		if a.owns(k.info(), own, r, cur) != nil {
			return Kept, nil
		}
		return Deleted, c.Delete(ctx, r.Name, preconditions(cur.GetUID(), cur.GetResourceVersion()))
	})
}

func (a *Applier) deleteSPC(ctx context.Context, own Owner, r connection.ResourceRef) (Outcome, error) {
	if err := a.checkCSI(ctx); err != nil {
		if errors.Is(err, ErrCSIDriverMissing) {
			return Kept, nil // no driver, nothing of ours can exist
		}
		return Kept, err
	}
	return remove(ctx, a, spcKind, a.spcs(r.Namespace), own, r)
}
