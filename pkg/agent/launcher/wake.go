package launcher

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	k8srecord "k8s.io/client-go/tools/record"

	"github.com/sc-extension/sc-extension/pkg/kube/controller"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
)

// WakeControllerName names the namespace wake's queue in logs and metrics.
const WakeControllerName = "launcher-wake"

// ReasonNamespaceCreated is the status reason and the record Event reason of
// a connection woken because its target namespace exists again.
const ReasonNamespaceCreated = "NamespaceCreated"

// Waker makes a connection that waits out a backoff due now; a connection
// that does not wait is left alone. *store.Store implements it.
type Waker interface {
	Wake(ctx context.Context, id, reason, message string) error
}

// waker wakes the connections sc-job parked on a missing or terminating
// namespace as soon as that namespace exists, instead of leaving them for
// the parking delay. It is level-triggered on both sides: a namespace that
// appears looks for connections parked on it, and a connection that gets
// parked looks for its namespace, so a namespace created between sc-job's
// check and its status write is not missed.
type waker struct {
	// records is the records informer's indexer, read through ParkedIndex.
	records    cache.Indexer
	versions   *recordcache.Cache
	namespaces corelisters.NamespaceLister
	wake       Waker
	recorder   k8srecord.EventRecorder
	log        zerolog.Logger
	worker     *controller.Worker[string]

	mu sync.Mutex
	// woken remembers, per connection id, the last wake. sc-job parks a
	// connection only when it finds the namespace missing or terminating;
	// if it does so again while our cache still shows the same namespace,
	// the cache is behind, and waking again would only loop. A new
	// namespace (new UID) wakes it again.
	woken map[string]wakeMark
}

// wakeMark is the namespace a connection was woken for, and the record's
// resourceVersion it was woken from: while the cache still holds that
// version, the wake has not reached the cache yet.
type wakeMark struct {
	namespace       types.UID
	resourceVersion string
}

func newWaker(d Deps, records cache.Indexer, versions *recordcache.Cache, log zerolog.Logger) (*waker, error) {
	w := &waker{
		records:    records,
		versions:   versions,
		namespaces: d.Namespaces.Lister(),
		wake:       d.Waker,
		recorder:   d.Recorder,
		log:        log,
		woken:      map[string]wakeMark{},
	}
	w.worker = controller.New(WakeControllerName, w.sync, controller.Options[string]{Clock: d.Clock, Log: log})
	_, err := d.Namespaces.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: w.namespaceChanged,
		UpdateFunc: func(oldObj, newObj any) {
			o, okO := oldObj.(metav1.Object)
			n, okN := newObj.(metav1.Object)
			if okO && okN && o.GetResourceVersion() == n.GetResourceVersion() {
				return // periodic resync: nothing changed
			}
			w.namespaceChanged(newObj)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("launcher: watch namespaces: %w", err)
	}
	_, err = d.Records.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.recordChanged,
		UpdateFunc: func(_, newObj any) { w.recordChanged(newObj) },
		DeleteFunc: w.recordDeleted,
	})
	if err != nil {
		return nil, fmt.Errorf("launcher: watch records for parked connections: %w", err)
	}
	return w, nil
}

// namespaceChanged queues a namespace that exists and is not terminating;
// sync decides whether anything waits for it.
func (w *waker) namespaceChanged(obj any) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok || ns.DeletionTimestamp != nil {
		return
	}
	w.worker.Add(ns.Name)
}

// recordChanged queues the target namespace of a parked connection.
func (w *waker) recordChanged(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	if v := w.versions.Get(cm); v.Parked() {
		w.worker.Add(v.Scope)
	}
}

func (w *waker) recordDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	w.mu.Lock()
	delete(w.woken, record.ID(cm))
	w.mu.Unlock()
}

// sync wakes every connection parked on namespace name if it exists and is
// not terminating. A failed wake is retried with backoff; the others are
// not repeated, since Wake of a connection that no longer waits is a no-op
// and woken skips the ones already done for this namespace.
func (w *waker) sync(ctx context.Context, name string) (controller.Result, error) {
	ns, err := w.namespaces.Get(name)
	switch {
	case apierrors.IsNotFound(err):
		return controller.Result{}, nil
	case err != nil:
		return controller.Result{}, fmt.Errorf("get namespace %s from cache: %w", name, err)
	case ns.DeletionTimestamp != nil:
		return controller.Result{}, nil
	}
	objs, err := w.records.ByIndex(ParkedIndex, name)
	if err != nil {
		return controller.Result{}, fmt.Errorf("list records parked on %s from cache: %w", name, err)
	}
	var errs []error
	for _, obj := range objs {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok {
			continue
		}
		v := w.versions.Get(cm)
		if !v.Parked() || v.Scope != name {
			continue // filed from this very version: never, unless the cache was not fed
		}
		id := record.ID(cm)
		log := w.log.With().Str("connection", v.Name).Str("objectId", id).Str("targetNamespace", name).Logger()
		if last := w.lastWake(id); last.namespace == ns.UID {
			if last.resourceVersion != cm.ResourceVersion {
				log.Info().Str("namespaceUID", string(ns.UID)).
					Msg("connection parked again on a namespace it was woken for; leaving it to its parking delay")
			}
			continue
		}
		msg := fmt.Sprintf("namespace %s exists; rendering again", name)
		if err := w.wake.Wake(ctx, id, ReasonNamespaceCreated, msg); err != nil {
			if record.IsNotFound(err) {
				continue // removed meanwhile
			}
			errs = append(errs, fmt.Errorf("wake connection %s: %w", id, err))
			continue
		}
		w.setWoken(id, wakeMark{namespace: ns.UID, resourceVersion: cm.ResourceVersion})
		w.recorder.Eventf(cm, corev1.EventTypeNormal, ReasonNamespaceCreated, "Namespace %s exists; woken to render again", name)
		log.Info().Msg("target namespace exists; woke parked connection")
	}
	return controller.Result{}, errors.Join(errs...)
}

func (w *waker) lastWake(id string) wakeMark {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.woken[id]
}

func (w *waker) setWoken(id string, last wakeMark) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.woken[id] = last
}
