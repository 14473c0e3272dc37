//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sc-extension/sc-extension/e2e/testbed/apiwrites"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// upgradeRerender is issue 9's "helm upgrade re-render of N unchanged
// connections": what it wrote and how long it took, against a plain loop
// reading the same records and rendered Secrets.
type upgradeRerender struct {
	helm time.Duration // `helm upgrade` started -> returned (it waits for the hook)
	hook time.Duration // the hook Job seen created -> seen ended
	// productWrites are writes to the product's objects (records,
	// credential and rendered Secrets, ServiceAccounts: everything labelled
	// managed-by=sc-extension) seen by their watches over the upgrade.
	productWrites int
	// requests lists apiserver_request_total's writes to those kinds of
	// object over the upgrade, whoever made them (helm's release Secrets,
	// the hook pod's Events).
	requests string
	getLoop  time.Duration
}

// benchUpgradeRerender runs `helm upgrade` of the installed release with
// unchanged values over the bulk's connections: its post-upgrade hook
// re-renders every one of them.
func (e *env) benchUpgradeRerender(t *testing.T, b *bulkRun) upgradeRerender {
	ctx := context.Background()
	cs := e.cluster.Clientset
	var out upgradeRerender

	managed := connection.LabelManagedBy + "=" + connection.ManagedByValue
	rec, err := apiwrites.Start(ctx, cs,
		apiwrites.Target{Resource: apiwrites.ConfigMaps, LabelSelector: managed},
		apiwrites.Target{Resource: apiwrites.Secrets, LabelSelector: managed},
		apiwrites.Target{Resource: apiwrites.ServiceAccounts, LabelSelector: managed})
	require.NoError(t, err)
	defer rec.Stop()
	hook := e.watchJobSpan(t, renderJob)
	writes := startWriteCount(t, e)
	start := time.Now()
	runHelm(t, e.cluster.Kubeconfig, e.helmArgs("upgrade", append([]string{"--timeout", "20m"}, benchValues...)...)...)
	out.helm = time.Since(start)
	// One write per object: the watches of the same object cannot both see it.
	_, out.requests = writes.done(t, e, 1)
	out.hook = hook.await(t)
	rec.Stop()
	require.NoError(t, rec.Err())
	seen := map[string]bool{}
	for _, w := range rec.Writes() {
		key := w.Key.String() + "@" + w.ResourceVersion
		if !seen[key] {
			seen[key] = true
			t.Logf("upgrade wrote %s (%s)", w.Key, w.Type)
		}
	}
	out.productWrites = len(seen)
	out.getLoop = e.benchGetLoop(t, b)
	return out
}

// benchGetLoop reads every record and rendered Secret of the bulk, one GET
// after another, with the testbed's client.
func (e *env) benchGetLoop(t *testing.T, b *bulkRun) time.Duration {
	ctx := context.Background()
	core := e.cluster.Clientset.CoreV1()
	start := time.Now()
	for i, name := range b.names {
		id := connection.ObjectID(name)
		_, err := core.ConfigMaps(systemNS).Get(ctx, connection.ConfigMapName(id), metav1.GetOptions{})
		require.NoError(t, err)
		_, err = core.Secrets(b.nss[i%len(b.nss)]).Get(ctx, connection.SecretName(id), metav1.GetOptions{})
		require.NoError(t, err)
	}
	return time.Since(start)
}

// jobSpan times one Job of a name from its creation to its end (complete,
// failed or deleted) as a watch delivers them.
type jobSpan struct {
	mu       sync.Mutex
	from, to time.Time
	failed   bool
	ended    chan struct{}
	stop     func()
}

func (e *env) watchJobSpan(t *testing.T, name string) *jobSpan {
	ctx, cancel := context.WithCancel(context.Background())
	// One left from before (helm's before-hook-creation deletes it) is not this one.
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	jobs := e.cluster.Clientset.BatchV1().Jobs(systemNS)
	l, err := jobs.List(ctx, metav1.ListOptions{FieldSelector: sel})
	require.NoError(t, err)
	earlier := map[types.UID]bool{}
	for _, j := range l.Items {
		earlier[j.UID] = true
	}
	w, err := jobs.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: l.ResourceVersion})
	require.NoError(t, err)
	s := &jobSpan{ended: make(chan struct{})}
	s.stop = func() { cancel(); w.Stop() }
	t.Cleanup(s.stop)
	go func() {
		for ev := range w.ResultChan() {
			j, ok := ev.Object.(*batchv1.Job)
			if !ok || earlier[j.UID] {
				continue
			}
			now := time.Now()
			s.mu.Lock()
			if ev.Type == watch.Added && s.from.IsZero() {
				s.from = now
			}
			end := ev.Type == watch.Deleted || j.Status.Succeeded > 0 || jobFailed(j)
			if !s.from.IsZero() && s.to.IsZero() && end {
				s.to, s.failed = now, jobFailed(j)
				close(s.ended)
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *jobSpan) await(t *testing.T) time.Duration {
	select {
	case <-s.ended:
	case <-time.After(time.Minute):
		t.Fatal("the render hook Job was not seen to end")
	}
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.False(t, s.failed, "the render hook Job failed")
	return s.to.Sub(s.from)
}

func (u upgradeRerender) rows(rep *report, n int) {
	rep.row(fmt.Sprintf("helm upgrade, values unchanged, over %d unchanged connections: writes to the product's objects (records, Secrets, ServiceAccounts; their watches)", n),
		fmt.Sprint(u.productWrites), "apiserver_request_total meanwhile, every writer: "+u.requests, "")
	rep.add(fmt.Sprintf("helm upgrade over %d unchanged connections, started -> returned (it waits for the render hook)", n), u.helm,
		fmt.Sprintf("plain client-go loop GETting the %d records and %d rendered Secrets", n, n), u.getLoop)
	rep.add(fmt.Sprintf("its render hook Job (sc-job --render-all), created -> ended, %d unchanged", n), u.hook,
		fmt.Sprintf("plain client-go loop GETting the %d records and %d rendered Secrets", n, n), u.getLoop)
}
