package apply

import (
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// Owner is the connection an Apply or Delete acts for, with what its record
// says it owns. Labels decide nothing on their own: any tenant who can
// create a Secret can copy them. An existing object is ours only if sc-job
// created it, which the UID the API server assigned proves: the record that
// holds it lives in the extension's namespace, where tenants cannot write.
type Owner struct {
	// ID is the connection's object id.
	ID string
	// Owned are the UIDs its record holds (Status.Owned).
	Owned []connection.OwnedObject
	// Rendered are the objects its record lists (Status.Resources). One
	// listed without a UID was rendered by a release that recorded none;
	// see adoptable.
	Rendered []connection.ResourceRef
	// RecordUID is the UID of its record's ConfigMap, from which the
	// creator token of what it creates is derived (see Token).
	RecordUID string
}

// OwnerOf is the Owner of c as its record stands.
func OwnerOf(c connection.Connection) Owner {
	return Owner{ID: c.Spec.ID(), Owned: c.Status.Owned, Rendered: c.Status.Resources, RecordUID: c.RecordUID}
}

// uid is what o's record holds for ref.
func (o Owner) uid(ref connection.ResourceRef) (string, bool) {
	return connection.Status{Owned: o.Owned}.OwnedUID(ref)
}

// adoptable is the migration rule for records written before UIDs were
// recorded: an object the record lists as rendered, with no UID recorded
// for it, is adopted once if it carries our labels (for a per-connection
// object, naming this connection). Its UID is then recorded, so the rule
// never applies to it again. It is no stronger than the labels were, so it
// applies only to what an older release had already rendered and adopted
// itself; a new object, or one whose UID is recorded, never falls under it.
func (o Owner) adoptable(k kindInfo, ref connection.ResourceRef, cur metav1.Object) bool {
	if _, ok := o.uid(ref); ok || !contains(o.Rendered, ref) {
		return false
	}
	return checkLabels(ref, cur.GetLabels(), k.owner(o.ID)) == nil
}

// kindInfo is the part of kind[T] ownership needs, free of T.
type kindInfo struct {
	shared bool
}

func (k kindInfo) owner(id string) string {
	if k.shared {
		return ""
	}
	return id
}

// owns decides whether cur, the live object ref names, is sc-extension's
// for own: its UID was recorded by some connection (a shared
// ServiceAccount is recorded by each connection that renders it) or
// created in this run, or it is an orphan (see orphan), or it falls under
// the migration rule.
func (a *Applier) owns(k kindInfo, own Owner, ref connection.ResourceRef, cur metav1.Object) error {
	uid := string(cur.GetUID())
	if uid != "" {
		if u, ok := own.uid(ref); ok && u == uid {
			return nil
		}
		if a.known(ref, uid) {
			return nil
		}
	}
	if a.orphan(k, own, ref, cur) {
		// Adopted as if created now: its UID goes into own's record, and
		// connections sharing it in this run know it.
		a.created(ref, uid)
		return nil
	}
	if own.adoptable(k, ref, cur) {
		return nil
	}
	if err := checkLabels(ref, cur.GetLabels(), k.owner(own.ID)); err != nil {
		return err
	}
	return &ownedError{ref: ref, sentinel: ownedSentinel(ref.Kind),
		why: "carries sc-extension's labels but was not created by sc-extension (its UID is in no connection record)"}
}

// orphan: sc-job created cur (its creator token says so) but the run
// died before its status write recorded cur's UID. Only an object for
// which own's record holds no UID qualifies: once a UID is recorded, a
// replacement is never ours, whatever it carries.
func (a *Applier) orphan(k kindInfo, own Owner, ref connection.ResourceRef, cur metav1.Object) bool {
	if _, ok := own.uid(ref); ok {
		return false
	}
	return a.createdFor(k, own, ref, cur.GetAnnotations()[AnnotationCreator])
}

// Recorded tells the Applier every UID the connections' records hold, so
// a ServiceAccount one connection created is known as ours to another
// that shares it, and every record's own UID, so a shared ServiceAccount
// one connection's dead run created is adopted by another. sc-job calls it
// with each pass's listing.
func (a *Applier) Recorded(all []connection.Connection) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range all {
		if c.RecordUID != "" {
			if a.records == nil {
				a.records = map[string]bool{}
			}
			a.records[c.RecordUID] = true
		}
		for _, o := range c.Status.Owned {
			a.remember(o.ResourceRef, o.UID)
		}
	}
}

// created remembers an object this run created: a connection rendered by
// another worker in the same run may share it before either record says so.
func (a *Applier) created(ref connection.ResourceRef, uid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.remember(ref, uid)
}

// lock serialises this run's writes of one shared object; it returns the
// unlock.
func (a *Applier) lock(ref connection.ResourceRef) func() {
	a.mu.Lock()
	if a.writing == nil {
		a.writing = map[connection.ResourceRef]*sync.Mutex{}
	}
	m := a.writing[ref]
	if m == nil {
		m = &sync.Mutex{}
		a.writing[ref] = m
	}
	a.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func (a *Applier) remember(ref connection.ResourceRef, uid string) {
	if uid == "" {
		return
	}
	if a.uids == nil {
		a.uids = map[connection.ResourceRef]map[string]bool{}
	}
	if a.uids[ref] == nil {
		a.uids[ref] = map[string]bool{}
	}
	a.uids[ref][uid] = true
}

func (a *Applier) known(ref connection.ResourceRef, uid string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.uids[ref][uid]
}

// checkLabels tells an object without our labels, or labelled for another
// connection, apart from one that is labelled like ours; it proves nothing
// about ownership, it only words the refusal. Shared ServiceAccounts carry
// no connection label and pass with id "".
func checkLabels(ref connection.ResourceRef, labels map[string]string, id string) error {
	if labels[render.LabelManagedBy] != render.ManagedByValue {
		return &ownedError{ref: ref, why: "exists and is not managed by sc-extension", sentinel: ownedSentinel(ref.Kind)}
	}
	if id != "" {
		if got := labels[render.LabelConnection]; got != id {
			return &ownedError{ref: ref, why: fmt.Sprintf("is labelled for another connection (%q)", got), sentinel: ownedSentinel(ref.Kind)}
		}
	}
	return nil
}

func contains(refs []connection.ResourceRef, x connection.ResourceRef) bool {
	for _, r := range refs {
		if r == x {
			return true
		}
	}
	return false
}
