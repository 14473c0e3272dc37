// Package fakeuid makes client-go fakes give created objects a UID, as the
// API server does: code that proves ownership by UID cannot be tested
// against a fake that leaves every UID empty.
package fakeuid

import (
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"
)

// Fake is what both the typed and the dynamic fake clientsets offer.
type Fake interface {
	PrependReactor(verb, resource string, reaction k8stesting.ReactionFunc)
	Tracker() k8stesting.ObjectTracker
}

// Assign makes every create on c store a copy of the object with a fresh
// UID "created-<resource>-<n>" (n counts the client's creates from 1) and
// return that copy; the caller's object is left as it was, as with a real
// API server. Reactors prepended later run first, so a test's failure
// injection still applies. It returns c.
func Assign[T Fake](c T) T {
	var (
		mu sync.Mutex
		n  int
	)
	tracker := c.Tracker()
	c.PrependReactor("create", "*", func(act k8stesting.Action) (bool, runtime.Object, error) {
		create, ok := act.(k8stesting.CreateActionImpl)
		if !ok || act.GetSubresource() != "" {
			return false, nil, nil
		}
		obj := create.GetObject().DeepCopyObject()
		m, ok := obj.(metav1.Object)
		if !ok {
			return false, nil, nil
		}
		if m.GetUID() == "" {
			mu.Lock()
			n++
			m.SetUID(fakeUID(act.GetResource().Resource, n))
			mu.Unlock()
		}
		gvr, ns := act.GetResource(), act.GetNamespace()
		if err := tracker.Create(gvr, obj, ns, create.CreateOptions); err != nil {
			return true, nil, err
		}
		stored, err := tracker.Get(gvr, ns, m.GetName(), metav1.GetOptions{})
		return true, stored, err
	})
	return c
}

func fakeUID(resource string, n int) types.UID {
	return types.UID(fmt.Sprintf("created-%s-%d", resource, n))
}
