package jobrun

import (
	"slices"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
)

// ownership is what one connection's run learnt about which objects are
// its own: the UIDs of objects it created or found to be its (to record)
// and the objects it deleted or no longer renders (to forget). It is
// written with the status the run writes anyway, never on its own, except
// when a newer request overtook the run: an object sc-job created must be
// recorded even then, or no later run could tell it from a forgery.
type ownership struct {
	own  []connection.OwnedObject
	drop []connection.ResourceRef
}

// learn takes every attempt's objects: an object created by a failed
// attempt is as much ours as one a later attempt left unchanged.
func (o *ownership) learn(objs []apply.Object) {
	for _, x := range objs {
		switch {
		case x.Outcome == apply.Deleted:
			o.forget(x.Ref)
		case x.UID != "":
			o.own = append(o.own, connection.OwnedObject{ResourceRef: x.Ref, UID: x.UID})
		}
	}
}

func (o *ownership) forget(refs ...connection.ResourceRef) {
	for _, r := range refs {
		for i := 0; i < len(o.own); i++ {
			if o.own[i].ResourceRef == r {
				o.own = append(o.own[:i:i], o.own[i+1:]...)
				i--
			}
		}
		o.drop = append(o.drop, r)
	}
}

// applyTo records what was learnt in s; it reports whether s changed. A
// dropped object leaves Resources too: listed there without a UID it would
// look like an older release's object to the migration rule (see
// apply.Owner), and a labelled look-alike created in its place would be
// adopted.
func (o ownership) applyTo(s *connection.Status) bool {
	changed := false
	for _, r := range o.drop {
		changed = s.Disown(r) || changed
		if i := slices.Index(s.Resources, r); i >= 0 {
			s.Resources = slices.Delete(slices.Clone(s.Resources), i, i+1)
			changed = true
		}
	}
	for _, x := range o.own {
		changed = s.Own(x.ResourceRef, x.UID) || changed
	}
	return changed
}
