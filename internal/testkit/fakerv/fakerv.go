// Package fakerv makes a client-go fake refuse an update made from a stale
// read, as the API server does: client-go's object tracker ignores
// resourceVersion, so a write conditional on "nothing changed since I
// read it" would always land against a fake, and a test of such a write
// could not fail.
package fakerv

import (
	"strconv"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// Fake is what both the typed and the dynamic fake clientsets offer.
type Fake interface {
	PrependReactor(verb, resource string, reaction k8stesting.ReactionFunc)
	Tracker() k8stesting.ObjectTracker
}

// Enforce makes every update of resource on c (not a subresource) conflict
// unless it carries the stored object's resourceVersion, and gives every
// update that lands a new one ("1", "2", ... per client). An object as
// created keeps the resourceVersion it was created with ("" unless set),
// so every writer must read before it writes. Reactors prepended later run
// first, so a test's failure injection still applies. It returns c.
func Enforce[T Fake](c T, resource string) T {
	var (
		mu sync.Mutex
		n  int
	)
	tracker := c.Tracker()
	c.PrependReactor("update", resource, func(act k8stesting.Action) (bool, runtime.Object, error) {
		update, ok := act.(k8stesting.UpdateActionImpl)
		if !ok || act.GetSubresource() != "" {
			return false, nil, nil
		}
		obj := update.GetObject().DeepCopyObject()
		m, ok := obj.(metav1.Object)
		if !ok {
			return false, nil, nil
		}
		gvr, ns := act.GetResource(), act.GetNamespace()
		// One update at a time: the check and the write are one step, as
		// they are in the API server's storage.
		mu.Lock()
		defer mu.Unlock()
		cur, err := tracker.Get(gvr, ns, m.GetName(), metav1.GetOptions{})
		if err != nil {
			return true, nil, err
		}
		curMeta, ok := cur.(metav1.Object)
		if !ok {
			return false, nil, nil
		}
		if m.GetResourceVersion() != curMeta.GetResourceVersion() {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), m.GetName(),
				&staleError{sent: m.GetResourceVersion(), stored: curMeta.GetResourceVersion()})
		}
		n++
		m.SetResourceVersion(strconv.Itoa(n))
		if err := tracker.Update(gvr, obj, ns, update.UpdateOptions); err != nil {
			return true, nil, err
		}
		stored, err := tracker.Get(gvr, ns, m.GetName(), metav1.GetOptions{})
		return true, stored, err
	})
	return c
}

type staleError struct{ sent, stored string }

func (e *staleError) Error() string {
	return "the object has been modified: resourceVersion " + strconv.Quote(e.sent) + " sent, " + strconv.Quote(e.stored) + " stored"
}
