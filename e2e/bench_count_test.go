//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// objectCount follows a set of objects through an informer (one LIST, then
// a watch: the benchmark's own polling must not load the API server it
// measures) and counts those that match.
type objectCount struct {
	mu      sync.Mutex
	matched map[string]bool
	changed chan struct{} // closed and replaced on every change
	stop    chan struct{}
}

// countObjects starts an informer over lw; match says under which key an
// object is followed ("" for not at all) and whether it counts now. It
// returns once the informer synced.
func countObjects(t *testing.T, lw cache.ListerWatcher, obj runtime.Object, match func(any) (string, bool)) *objectCount {
	c := &objectCount{matched: map[string]bool{}, changed: make(chan struct{}), stop: make(chan struct{})}
	inf := cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{})
	set := func(o any, deleted bool) {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		key, ok := match(o)
		if key == "" {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if ok && !deleted {
			c.matched[key] = true
		} else {
			delete(c.matched, key)
		}
		close(c.changed)
		c.changed = make(chan struct{})
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { set(o, false) },
		UpdateFunc: func(_, o any) { set(o, false) },
		DeleteFunc: func(o any) { set(o, true) },
	})
	require.NoError(t, err)
	go inf.Run(c.stop)
	t.Cleanup(c.Stop)
	require.True(t, cache.WaitForCacheSync(c.stop, inf.HasSynced), "informer never synced")
	return c
}

// Stop ends the informer; safe to call twice.
func (c *objectCount) Stop() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
}

func (c *objectCount) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.matched)
}

// errAborted: the abort channel of a wait was closed first.
var errAborted = errors.New("aborted")

// wait waits until cond holds for the number of matching objects; it
// returns errAborted when abort is closed first (a nil abort never is) and
// an error after timeout.
func (c *objectCount) wait(cond func(n int) bool, timeout time.Duration, abort <-chan struct{}) error {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		n, changed := len(c.matched), c.changed
		c.mu.Unlock()
		if cond(n) {
			return nil
		}
		select {
		case <-changed:
		case <-abort:
			return fmt.Errorf("%w at %d", errAborted, c.count())
		case <-deadline:
			return fmt.Errorf("timed out after %s at %d", timeout, c.count())
		}
	}
}

// await is wait failing the test.
func (c *objectCount) await(t *testing.T, cond func(n int) bool, timeout time.Duration, what string) {
	t.Helper()
	if err := c.wait(cond, timeout, nil); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func atLeast(want int) func(int) bool { return func(n int) bool { return n >= want } }

func none(n int) bool { return n == 0 }

// listWatch lists and watches one kind with a label selector, in ns (""
// for all namespaces).
func listWatch(cs kubernetes.Interface, kind string, ns, selector string) cache.ListerWatcher {
	opts := func(o *metav1.ListOptions) { o.LabelSelector = selector }
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			opts(&o)
			switch kind {
			case "Secret":
				return cs.CoreV1().Secrets(ns).List(ctx, o)
			case "ConfigMap":
				return cs.CoreV1().ConfigMaps(ns).List(ctx, o)
			}
			return nil, fmt.Errorf("listWatch: kind %s", kind)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			opts(&o)
			switch kind {
			case "Secret":
				return cs.CoreV1().Secrets(ns).Watch(ctx, o)
			case "ConfigMap":
				return cs.CoreV1().ConfigMaps(ns).Watch(ctx, o)
			}
			return nil, fmt.Errorf("listWatch: kind %s", kind)
		},
	}
}

// secretIn matches Secrets of the given namespaces, keyed ns/name.
func secretIn(nss map[string]bool) func(any) (string, bool) {
	return func(o any) (string, bool) {
		s, ok := o.(*corev1.Secret)
		if !ok || !nss[s.Namespace] {
			return "", false
		}
		return s.Namespace + "/" + s.Name, true
	}
}
