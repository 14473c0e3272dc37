package apply

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// FieldManager names sc-job's writes in managedFields (the shared one).
const FieldManager = connection.FieldManager

var (
	// SPCResource is the SecretProviderClass resource of the CSI driver.
	SPCResource = schema.GroupVersionResource{Group: render.SPCGroup, Version: render.SPCVersion, Resource: render.SPCResource}
	// CRDResource is where the driver's CRD is looked up.
	CRDResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// conflictBackoff bounds re-read-and-retry loops on one object.
var conflictBackoff = wait.Backoff{Steps: 8, Duration: 10 * time.Millisecond, Factor: 2, Jitter: 0.5, Cap: 500 * time.Millisecond}

// Result counts what a call did, and lists each object with its outcome in
// the order they were handled (sc-job logs one line per object).
type Result struct {
	Created, Updated, Unchanged, Deleted, Kept int
	Objects                                    []Object
}

// Object is what a call did to one object.
type Object struct {
	Ref     connection.ResourceRef
	Outcome Outcome
	// UID of the object left in place (Created, Updated, Unchanged), for
	// the connection's record (connection.Status.Owned); "" otherwise.
	UID string
}

// Writes is the number of API writes made.
func (r Result) Writes() int { return r.Created + r.Updated + r.Deleted }

// Merge adds o's counts and objects to r.
func (r *Result) Merge(o Result) {
	r.Created += o.Created
	r.Updated += o.Updated
	r.Unchanged += o.Unchanged
	r.Deleted += o.Deleted
	r.Kept += o.Kept
	r.Objects = append(r.Objects, o.Objects...)
}

func (r *Result) add(ref connection.ResourceRef, o Outcome, uid string) {
	switch o {
	case Created:
		r.Created++
	case Updated:
		r.Updated++
	case Unchanged:
		r.Unchanged++
	case Deleted:
		r.Deleted++
	case Kept:
		r.Kept++
	}
	r.Objects = append(r.Objects, Object{Ref: ref, Outcome: o, UID: uid})
}

// Outcome is what happened to one object.
type Outcome int

// Outcomes of one object.
const (
	Unchanged Outcome = iota
	Created
	Updated
	Deleted
	// Kept: a delete left the object alone (gone, not ours, or a
	// ServiceAccount still in use).
	Kept
)

func (o Outcome) String() string {
	switch o {
	case Created:
		return "created"
	case Updated:
		return "updated"
	case Deleted:
		return "deleted"
	case Kept:
		return "kept"
	default:
		return "unchanged"
	}
}

// Applier writes one run's objects. It remembers whether the CSI driver's
// CRD exists for its lifetime (one sc-job run), so 500 keyvaultCsi
// connections cost one lookup.
type Applier struct {
	client  kubernetes.Interface
	dynamic dynamic.Interface

	mu        sync.Mutex
	csiKnown  bool
	csiExists bool
	// namespaces seen to exist this run; a namespace deleted mid-run
	// surfaces as a NotFound on write instead.
	namespaces map[string]bool
	// uids are the objects known to be ours: recorded by any connection
	// (Recorded) or created in this run.
	uids map[connection.ResourceRef]map[string]bool
	// records are the UIDs of the records Recorded was told of.
	records map[string]bool
	// writing serialises the writes of each shared object (lock).
	writing map[connection.ResourceRef]*sync.Mutex
}

// New returns an Applier; dyn may be nil when no keyvaultCsi connection is
// ever applied (a keyvaultCsi connection then fails with ErrCSIDriverMissing).
func New(client kubernetes.Interface, dyn dynamic.Interface) *Applier {
	return &Applier{client: client, dynamic: dyn}
}

// Apply writes objs for own. It stops at the first failing object and
// returns a *StepError naming the step; the objects handled before it are
// in the Result, with their UIDs, so the caller can record what it created
// even when a later object failed.
func (a *Applier) Apply(ctx context.Context, own Owner, objs render.Objects) (Result, error) {
	var res Result
	refs := objs.Refs()
	if len(refs) == 0 {
		return res, nil
	}
	if err := a.checkNamespace(ctx, refs[0].Namespace); err != nil {
		return res, stepErr(StepCheckNamespace, refs[0], err)
	}
	if sec := objs.Secret; sec != nil {
		r := ref(render.KindSecret, sec.Namespace, sec.Name)
		o, uid, err := write(ctx, a, secretKind, a.secrets(sec.Namespace), own, sec)
		if err != nil {
			return res, stepErr(StepApplySecret, r, err)
		}
		res.add(r, o, uid)
	}
	if sa := objs.ServiceAccount; sa != nil {
		r := ref(render.KindServiceAccount, sa.Namespace, sa.Name)
		o, uid, err := write(ctx, a, serviceAccountKind, a.serviceAccounts(sa.Namespace), own, sa)
		if err != nil {
			return res, stepErr(StepApplyServiceAccount, r, err)
		}
		res.add(r, o, uid)
	}
	if u := objs.SecretProviderClass; u != nil {
		r := ref(render.KindSecretProviderClass, u.GetNamespace(), u.GetName())
		o, uid, err := a.applySPC(ctx, own, u)
		if err != nil {
			return res, stepErr(StepApplySPC, r, err)
		}
		res.add(r, o, uid)
	}
	return res, nil
}

// applySPC checks for the CSI driver first: without its CRD the write would
// fail with a puzzling 404.
func (a *Applier) applySPC(ctx context.Context, own Owner, want *unstructured.Unstructured) (Outcome, string, error) {
	if err := a.checkCSI(ctx); err != nil {
		return Unchanged, "", err
	}
	return write(ctx, a, spcKind, a.spcs(want.GetNamespace()), own, want)
}

func ref(kind, ns, name string) connection.ResourceRef {
	return connection.ResourceRef{Kind: kind, Namespace: ns, Name: name}
}

func (a *Applier) checkNamespace(ctx context.Context, ns string) error {
	a.mu.Lock()
	known := a.namespaces[ns]
	a.mu.Unlock()
	if known {
		return nil
	}
	got, err := a.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: namespace %q not found", ErrNamespaceMissing, ns)
	}
	if err != nil {
		return fmt.Errorf("get namespace %s: %w", ns, err)
	}
	// A terminating namespace refuses new objects and will be gone soon:
	// the same as missing for the connection.
	if got.DeletionTimestamp != nil || got.Status.Phase == corev1.NamespaceTerminating {
		return fmt.Errorf("%w: namespace %q is being deleted", ErrNamespaceMissing, ns)
	}
	a.mu.Lock()
	if a.namespaces == nil {
		a.namespaces = map[string]bool{}
	}
	a.namespaces[ns] = true
	a.mu.Unlock()
	return nil
}

// checkCSI tells "the driver is not installed" apart from other failures;
// a missing CRD would otherwise surface as a puzzling 404 on create.
func (a *Applier) checkCSI(ctx context.Context) error {
	a.mu.Lock()
	known, exists := a.csiKnown, a.csiExists
	a.mu.Unlock()
	if !known {
		// The lookup runs without the lock: a slow API call for one
		// keyvaultCsi connection must not stall other workers' namespace
		// checks. Two workers may both look; both learn the same answer.
		var err error
		if exists, err = a.lookUpCSI(ctx); err != nil {
			return err
		}
		a.mu.Lock()
		a.csiKnown, a.csiExists = true, exists
		a.mu.Unlock()
	}
	if !exists {
		return fmt.Errorf("%w: CRD %s not found", ErrCSIDriverMissing, render.SPCCRDName)
	}
	return nil
}

func (a *Applier) lookUpCSI(ctx context.Context) (bool, error) {
	if a.dynamic == nil {
		return false, nil
	}
	_, err := a.dynamic.Resource(CRDResource).Get(ctx, render.SPCCRDName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up CRD %s: %w", render.SPCCRDName, err)
	}
	return true, nil
}

// wrapAPI names the object; API errors never quote a Secret's data, and
// sentinel errors already name it.
func wrapAPI(verb string, r connection.ResourceRef, err error) error {
	if refused(err) {
		return err
	}
	if namespaceGone(err) {
		return fmt.Errorf("%w: %s %s/%s: %w", ErrNamespaceMissing, verb, r.Kind, r.Namespace, err)
	}
	return fmt.Errorf("%s %s %s/%s: %w", verb, r.Kind, r.Namespace, r.Name, err)
}
