// Package fakeactions renders the actions a client-go fake recorded in the one
// form every exact-action test asserts: "verb resource namespace/name".
package fakeactions

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	k8stesting "k8s.io/client-go/testing"
	k8srecord "k8s.io/client-go/tools/record"
)

// Lister is what both the typed and the dynamic fake clientsets offer.
type Lister interface{ Actions() []k8stesting.Action }

// Format renders each action as "verb resource namespace/name". Reads and
// writes name their object; list and watch have none. Events are named "*"
// because their names carry a random suffix.
func Format(acts []k8stesting.Action) []string {
	out := make([]string, 0, len(acts))
	for _, a := range acts {
		out = append(out, fmt.Sprintf("%s %s %s/%s", a.GetVerb(), a.GetResource().Resource, a.GetNamespace(), name(a)))
	}
	return out
}

// Of is Format over everything c recorded.
func Of(c Lister) []string { return Format(c.Actions()) }

// Writes keeps the create, update, patch and delete actions of Format(acts).
func Writes(acts []k8stesting.Action) []string {
	var w []k8stesting.Action
	for _, a := range acts {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete", "delete-collection":
			w = append(w, a)
		}
	}
	return Format(w)
}

// Without drops the list and watch actions informers make, so a controller
// test asserts only what its own code did.
func Without(acts []k8stesting.Action, verbs ...string) []k8stesting.Action {
	drop := map[string]bool{}
	for _, v := range verbs {
		drop[v] = true
	}
	var out []k8stesting.Action
	for _, a := range acts {
		if !drop[a.GetVerb()] {
			out = append(out, a)
		}
	}
	return out
}

func name(a k8stesting.Action) string {
	if a.GetResource().Resource == "events" && a.GetVerb() == "create" {
		return "*"
	}
	// GetAction matches get, delete and patch (all carry GetName);
	// CreateAction matches create and update (both carry the object).
	switch x := a.(type) {
	case k8stesting.GetAction:
		return x.GetName()
	case k8stesting.CreateAction:
		return objectName(x.GetObject())
	}
	return ""
}

func objectName(o any) string {
	if m, err := meta.Accessor(o); err == nil {
		return m.GetName()
	}
	return ""
}

// Events drains the Events a record.FakeRecorder holds, oldest first, without
// blocking: what a controller recorded so far.
func Events(r *k8srecord.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-r.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}
