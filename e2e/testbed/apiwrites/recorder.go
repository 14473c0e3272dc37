package apiwrites

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// Resource is a resource the Recorder can watch.
type Resource string

const (
	ConfigMaps      Resource = "configmaps"
	Secrets         Resource = "secrets"
	ServiceAccounts Resource = "serviceaccounts"
)

// Target is one watch: a resource in one namespace, label-selected.
type Target struct {
	Resource      Resource
	Namespace     string
	LabelSelector string
}

func (t Target) String() string {
	return fmt.Sprintf("%s in %s (%s)", t.Resource, t.Namespace, t.LabelSelector)
}

// Key names one object.
type Key struct {
	Resource        Resource
	Namespace, Name string
}

func (k Key) String() string { return fmt.Sprintf("%s %s/%s", k.Resource, k.Namespace, k.Name) }

// Write is one write the API server reported.
type Write struct {
	Key  Key
	Type watch.EventType // Added, Modified or Deleted
	// ResourceVersion is the object's after the write; Revision is the same
	// as a number: the etcd revision, ordered across every object of the
	// API server (the testbed's and kind's API servers both expose it).
	ResourceVersion string
	Revision        uint64
	// Object is the object as written (its managedFields say by whom): a
	// *corev1.ConfigMap, a *corev1.ServiceAccount, or a *corev1.Secret
	// without its data.
	Object runtime.Object
}

// Recorder collects the writes of its targets from Start until Stop.
type Recorder struct {
	mu      sync.Mutex
	writes  []Write
	start   map[Target]uint64
	errs    []error
	changed chan struct{} // closed and replaced on every write
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Start lists each target (its resourceVersion is the target's start) and
// watches it from there: no write after Start is missed, none before it is
// counted. A watch the API server ends is resumed from the last event; one
// that cannot be resumed (410 Gone) is an error of Err.
func Start(ctx context.Context, cs kubernetes.Interface, targets ...Target) (*Recorder, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &Recorder{start: map[Target]uint64{}, changed: make(chan struct{}), cancel: cancel}
	for _, t := range targets {
		lw, err := listWatch(cs, t)
		if err != nil {
			r.Stop()
			return nil, err
		}
		list, err := lw.ListWithContext(ctx, metav1.ListOptions{LabelSelector: t.LabelSelector})
		if err != nil {
			r.Stop()
			return nil, fmt.Errorf("list %s: %w", t, err)
		}
		lm, err := meta.ListAccessor(list)
		if err != nil {
			r.Stop()
			return nil, fmt.Errorf("list %s: %w", t, err)
		}
		rev, err := ParseRevision(lm.GetResourceVersion())
		if err != nil {
			r.Stop()
			return nil, fmt.Errorf("list %s: %w", t, err)
		}
		r.start[t] = rev
		w, err := watchtools.NewRetryWatcherWithContext(ctx, lm.GetResourceVersion(), lw)
		if err != nil {
			r.Stop()
			return nil, fmt.Errorf("watch %s: %w", t, err)
		}
		r.wg.Add(1)
		go r.consume(t, w)
	}
	return r, nil
}

func listWatch(cs kubernetes.Interface, t Target) (*cache.ListWatch, error) {
	sel := func(o metav1.ListOptions) metav1.ListOptions { o.LabelSelector = t.LabelSelector; return o }
	core := cs.CoreV1()
	switch t.Resource {
	case ConfigMaps:
		return &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return core.ConfigMaps(t.Namespace).List(ctx, sel(o))
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return core.ConfigMaps(t.Namespace).Watch(ctx, sel(o))
			},
		}, nil
	case Secrets:
		return &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				l, err := core.Secrets(t.Namespace).List(ctx, sel(o))
				if l != nil {
					for i := range l.Items {
						l.Items[i].Data, l.Items[i].StringData = nil, nil
					}
				}
				return l, err
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return core.Secrets(t.Namespace).Watch(ctx, sel(o))
			},
		}, nil
	case ServiceAccounts:
		return &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return core.ServiceAccounts(t.Namespace).List(ctx, sel(o))
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return core.ServiceAccounts(t.Namespace).Watch(ctx, sel(o))
			},
		}, nil
	}
	return nil, fmt.Errorf("apiwrites: resource %q is not supported", t.Resource)
}

func (r *Recorder) consume(t Target, w *watchtools.RetryWatcher) {
	defer r.wg.Done()
	defer w.Stop()
	for {
		select {
		case <-w.Done():
			return
		case ev, ok := <-w.ResultChan():
			if !ok {
				return
			}
			if err := r.add(t, ev); err != nil {
				r.mu.Lock()
				r.errs = append(r.errs, fmt.Errorf("watch %s: %w", t, err))
				r.mu.Unlock()
				return
			}
		}
	}
}

func (r *Recorder) add(t Target, ev watch.Event) error {
	switch ev.Type {
	case watch.Bookmark:
		return nil
	case watch.Error:
		return apierrors.FromObject(ev.Object)
	}
	if s, ok := ev.Object.(*corev1.Secret); ok {
		s = s.DeepCopy()
		s.Data, s.StringData = nil, nil
		ev.Object = s
	}
	m, err := meta.Accessor(ev.Object)
	if err != nil {
		return err
	}
	rev, err := ParseRevision(m.GetResourceVersion())
	if err != nil {
		return err
	}
	w := Write{
		Key:             Key{Resource: t.Resource, Namespace: m.GetNamespace(), Name: m.GetName()},
		Type:            ev.Type,
		ResourceVersion: m.GetResourceVersion(),
		Revision:        rev,
		Object:          ev.Object,
	}
	r.mu.Lock()
	r.writes = append(r.writes, w)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return nil
}

// Stop ends every watch; the writes seen so far stay readable.
func (r *Recorder) Stop() {
	r.cancel()
	r.wg.Wait()
}

// Err reports a watch that ended for good: counts after it are incomplete.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.errs...)
}

// StartRevision is the revision target was listed at: its writes are
// those after it.
func (r *Recorder) StartRevision(t Target) uint64 { return r.start[t] }

// Writes returns every write seen so far, in the order the watches
// delivered them (per target, the order of the writes).
func (r *Recorder) Writes() []Write {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Write(nil), r.writes...)
}

// Await waits until cond holds for the writes seen so far, re-checking on
// every new write; it is how a test knows a watch delivered a write it made
// or caused (a watch delivers one resource's writes in revision order, so
// everything before that write was delivered too).
func (r *Recorder) Await(ctx context.Context, cond func([]Write) bool) error {
	for {
		r.mu.Lock()
		ws, changed, errs := append([]Write(nil), r.writes...), r.changed, errors.Join(r.errs...)
		r.mu.Unlock()
		if cond(ws) {
			return nil
		}
		if errs != nil {
			return errs
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Between keeps the writes with a revision in (from, to].
func Between(ws []Write, from, to uint64) []Write {
	var out []Write
	for _, w := range ws {
		if w.Revision > from && w.Revision <= to {
			out = append(out, w)
		}
	}
	return out
}

// Revision is the API server's current revision, read with a quorum list
// of one ConfigMap of namespace: every write that finished before the call
// has a revision at most this one.
func Revision(ctx context.Context, cs kubernetes.Interface, namespace string) (uint64, error) {
	l, err := cs.CoreV1().ConfigMaps(namespace).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("read the current revision: %w", err)
	}
	return ParseRevision(l.ResourceVersion)
}

// ParseRevision reads a resourceVersion as the etcd revision it is on the
// API servers tests run against. Clients must not order resourceVersions in
// general; a test of this project's own clusters may.
func ParseRevision(rv string) (uint64, error) {
	n, err := strconv.ParseUint(rv, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("resourceVersion %q is not a revision: %w", rv, err)
	}
	return n, nil
}
