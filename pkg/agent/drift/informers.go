package drift

import (
	"reflect"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
)

// The resources drift watches.
var (
	secretsResource  = corev1.SchemeGroupVersion.WithResource("secrets")
	accountsResource = corev1.SchemeGroupVersion.WithResource("serviceaccounts")
)

// Informers are drift's watches on Secrets and ServiceAccounts: metadata
// only, one pair per watched namespace or one pair for all namespaces. The
// managed-by label is user-settable, so anyone who can create a Secret can
// put objects into these watches; what they cost the agent is a few hundred
// bytes of identity each, never their data, labels or annotations. Drift
// reads an object in full only when it changed and a record claims it.
// Informers satisfies lifecycle.Informers.
type Informers struct {
	factories []metadatainformer.SharedInformerFactory
	secrets   []informers.GenericInformer
	accounts  []informers.GenericInformer
}

// NewInformers builds drift's informers over the namespaces policy allows.
// Every list and watch is narrowed on the server to objects labelled
// managed-by sc-extension, and the namespaces the policy denies outright
// (its Release namespace, which holds every connection's credentials, the
// system ones and its Denied list) are excluded by field selector; with a
// Watch list, there is one namespaced pair of watches per allowed entry.
// They must be started after New registered its handlers.
func NewInformers(client metadata.Interface, policy namespaces.Policy, resync time.Duration) *Informers {
	var fs []string
	for _, ns := range excluded(policy) {
		fs = append(fs, "metadata.namespace!="+ns)
	}
	tweak := func(o *metav1.ListOptions) {
		o.LabelSelector = connection.LabelManagedBy + "=" + connection.ManagedByValue
		o.FieldSelector = strings.Join(fs, ",")
	}
	watched := []string{metav1.NamespaceAll}
	if len(policy.Watch) > 0 {
		watched = nil
		for _, ns := range policy.Watch {
			if policy.Allows(ns) == nil && !slices.Contains(watched, ns) {
				watched = append(watched, ns)
			}
		}
	}
	i := &Informers{}
	for _, ns := range watched {
		f := metadatainformer.NewFilteredSharedInformerFactory(client, resync, ns, tweak)
		i.factories = append(i.factories, f)
		i.secrets = append(i.secrets, identityOnly(f.ForResource(secretsResource)))
		i.accounts = append(i.accounts, identityOnly(f.ForResource(accountsResource)))
	}
	return i
}

// identityOnly makes inf cache what drift decides on and nothing a tenant
// could inflate: annotations (up to 256 KiB each object) and managed
// fields are dropped.
func identityOnly(inf informers.GenericInformer) informers.GenericInformer {
	// SetTransform fails only on a started informer; this one is new.
	_ = inf.Informer().SetTransform(keepIdentity)
	return inf
}

// keepIdentity is the informers' transform.
func keepIdentity(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil // a DeletedFinalStateUnknown tombstone is left as it is
	}
	return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Namespace:       m.Namespace,
		Name:            m.Name,
		UID:             m.UID,
		ResourceVersion: m.ResourceVersion,
	}}, nil
}

// Start starts every informer.
func (i *Informers) Start(stopCh <-chan struct{}) {
	for _, f := range i.factories {
		f.Start(stopCh)
	}
}

// WaitForCacheSync waits for every informer; the one entry is true once
// all have synced.
func (i *Informers) WaitForCacheSync(stopCh <-chan struct{}) map[reflect.Type]bool {
	synced := true
	for _, f := range i.factories {
		for _, ok := range f.WaitForCacheSync(stopCh) {
			synced = synced && ok
		}
	}
	return map[reflect.Type]bool{reflect.TypeFor[*metav1.PartialObjectMetadata](): synced}
}

// Shutdown waits for the informers to stop (after their stop channel
// closed).
func (i *Informers) Shutdown() {
	for _, f := range i.factories {
		f.Shutdown()
	}
}

// Cached returns every object the informers hold, to inspect what drift
// keeps in memory.
func (i *Informers) Cached() []runtime.Object {
	var out []runtime.Object
	for _, inf := range append(append([]informers.GenericInformer(nil), i.secrets...), i.accounts...) {
		for _, o := range inf.Informer().GetStore().List() {
			if ro, ok := o.(runtime.Object); ok {
				out = append(out, ro)
			}
		}
	}
	return out
}

// byKind returns the informers holding kind.
func (i *Informers) byKind(kind string) []informers.GenericInformer {
	switch kind {
	case KindSecret:
		return i.secrets
	case KindServiceAccount:
		return i.accounts
	}
	return nil
}

// resourceOf maps a kind drift watches to its resource, for NotFound errors.
func resourceOf(kind string) schema.GroupResource {
	if kind == KindServiceAccount {
		return accountsResource.GroupResource()
	}
	return secretsResource.GroupResource()
}

// mayBeRendered reports whether name follows the pattern sc-job renders
// kind under (connection.SecretName, connection.ServiceAccountName); other
// objects carrying the label are never looked at.
func mayBeRendered(kind, name string) bool {
	switch kind {
	case KindSecret:
		return strings.HasPrefix(name, "sc-") && strings.HasSuffix(name, "-secret")
	case KindServiceAccount:
		return strings.HasPrefix(name, "sc-account-")
	}
	return false
}

// excluded lists every namespace policy denies whatever its Watch list
// says, once each, in a fixed order: the release namespace, the system
// ones, then Denied.
func excluded(policy namespaces.Policy) []string {
	var out []string
	for _, ns := range append(append([]string{policy.Release}, namespaces.System()...), policy.Denied...) {
		if ns != "" && !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out
}
