//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

const (
	hostileSecrets = 500
	hostileBytes   = 1 << 20
	// hostileLabel marks the test's flood, to tell it apart in a dump (it
	// also carries managed-by, as the product's Secrets do).
	hostileLabel = "e2e.sc-extension.io/hostile"
	// rssGrowthBound is how much the leader's RSS may grow while the flood
	// is watched: a fifth of the 256 MiB limit. Caching the flood's data,
	// as typed informers did, needs at least its 500 MiB and ends in an
	// OOM kill; caching its metadata costs some 130 bytes an object.
	rssGrowthBound = 48 << 20
)

// TestHostileTenantSecretsDoNotGrowTheLeader: a tenant creates 500
// Secrets of 1 MiB labelled managed-by=sc-extension in their namespace.
// The leading agent keeps running (same pod, no restart), its memory
// barely moves, and drift still repairs a real edit made after the flood.
func TestHostileTenantSecretsDoNotGrowTheLeader(t *testing.T) {
	e := product(t)
	status := e.followStatus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cs := e.cluster.Clientset
	ns := e.targetNamespace(t)

	creates := e.createBlobs(ctx, t, "hostile", ns, 1)
	status.awaitFinals(t, 5*time.Minute, connection.PhaseSucceeded, creates)
	var name string
	for n := range creates {
		name = n
	}

	lease, err := cs.CoordinationV1().Leases(systemNS).Get(ctx, agentLease, metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, lease.Spec.HolderIdentity)
	leader := *lease.Spec.HolderIdentity
	e.keepLogOnFailure(t, leader)
	pod, err := cs.CoreV1().Pods(systemNS).Get(ctx, leader, metav1.GetOptions{})
	require.NoError(t, err, "the Lease holder is a running agent pod")
	restarts := restartsOf(pod)
	before := e.podMetrics(t, pod)
	t.Logf("leader %s before the flood: RSS %.1f MiB, heap in use %.1f MiB",
		leader, before.rss/(1<<20), before.heapInuse/(1<<20))

	// One delete per Secret: a DeleteCollection of 500 MiB outlasts the
	// API server's request timeout.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for _, err := range inParallel(hostileSecrets, func(i int) error {
			if err := cs.CoreV1().Secrets(ns).Delete(ctx, floodName(i), metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
				return err
			}
			return nil
		}) {
			assert.NoError(t, err, "cleanup: delete the flood")
		}
	})
	flood(ctx, t, cs.CoreV1().Secrets(ns))

	// A real drift after the flood. The leader's Secret watch is one
	// stream and its queue is FIFO, so once this edit is reported every
	// flood event has been handled.
	secretName := connection.SecretName(connection.ObjectID(name))
	require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, secretName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for k := range s.Data {
			s.Data[k] = []byte("edited by the tenant")
		}
		_, err = cs.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
		return err
	}))
	eventually(t, 2*time.Minute, "drift reported for "+name, func(context.Context) (bool, error) {
		for _, ev := range status.of(name) {
			if ev.Reason == "Drift" {
				return true, nil
			}
		}
		return false, nil
	})
	after := e.podMetrics(t, pod)
	t.Logf("leader %s after %d Secrets of %d KiB: RSS %.1f MiB (%+.1f MiB), heap in use %.1f MiB (%+.1f MiB)",
		leader, hostileSecrets, hostileBytes>>10, after.rss/(1<<20), (after.rss-before.rss)/(1<<20),
		after.heapInuse/(1<<20), (after.heapInuse-before.heapInuse)/(1<<20))

	pod, err = cs.CoreV1().Pods(systemNS).Get(ctx, leader, metav1.GetOptions{})
	require.NoError(t, err, "the leader pod still exists")
	assert.Equal(t, restarts, restartsOf(pod), "the leader was never restarted (OOM kill or crash)")
	lease, err = cs.CoordinationV1().Leases(systemNS).Get(ctx, agentLease, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, leader, *lease.Spec.HolderIdentity, "the same agent still leads")
	assert.Less(t, after.rss-before.rss, float64(rssGrowthBound), "the flood's data is not held by the leader")

	// The repair still happens: the record is Succeeded again.
	e.awaitRecord(t, name, "repaired", func(c connection.Connection) bool {
		return c.Status.Phase == connection.PhaseSucceeded && c.Status.Reason != "Drift"
	})
}

type secretCreator interface {
	Create(ctx context.Context, s *corev1.Secret, opts metav1.CreateOptions) (*corev1.Secret, error)
}

// floodName is the name of the i-th Secret of the flood; half follow the
// pattern sc-job renders under.
func floodName(i int) string {
	if i%2 == 0 {
		return fmt.Sprintf("sc-flood%03d-secret", i)
	}
	return fmt.Sprintf("flood-%03d", i)
}

// flood creates the tenant's Secrets.
func flood(ctx context.Context, t *testing.T, secrets secretCreator) {
	t.Helper()
	start := time.Now()
	payload := []byte(strings.Repeat("x", hostileBytes))
	for _, err := range inParallel(hostileSecrets, func(i int) error {
		_, err := secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: floodName(i), Labels: map[string]string{
				connection.LabelManagedBy: connection.ManagedByValue, hostileLabel: "true"}},
			Data: map[string][]byte{"blob": payload},
		}, metav1.CreateOptions{})
		return err
	}) {
		require.NoError(t, err)
	}
	t.Logf("created %d Secrets of %d KiB in %s", hostileSecrets, hostileBytes>>10, time.Since(start).Round(time.Second))
}

// inParallel runs do(0..n-1), eight at a time, and returns the errors.
func inParallel(n int, do func(i int) error) []error {
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				errs[i] = do(i)
			}
		})
	}
	wg.Wait()
	return errs
}

// restartsOf is the pod's identity and its containers' restarts.
func restartsOf(p *corev1.Pod) string {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return fmt.Sprintf("pod %s, %d restarts", p.UID, n)
}

type processMetrics struct{ rss, heapInuse float64 }

// podMetrics reads one agent pod's own /metrics through the API server's
// pod proxy (the Service would pick any replica).
func (e *env) podMetrics(t *testing.T, pod *corev1.Pod) processMetrics {
	t.Helper()
	var port string
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == "http" {
				port = strconv.Itoa(int(p.ContainerPort))
			}
		}
	}
	require.NotEmpty(t, port, "the agent pod has a port named http")
	b, err := e.cluster.Clientset.CoreV1().Pods(systemNS).ProxyGet("http", pod.Name, port, "/metrics", nil).DoRaw(context.Background())
	require.NoError(t, err)
	var m processMetrics
	for _, line := range strings.Split(string(b), "\n") {
		for prefix, v := range map[string]*float64{"process_resident_memory_bytes ": &m.rss, "go_memstats_heap_inuse_bytes ": &m.heapInuse} {
			if strings.HasPrefix(line, prefix) {
				f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, prefix)), 64)
				require.NoError(t, err)
				*v = f
			}
		}
	}
	require.NotZero(t, m.rss, "agent /metrics has process_resident_memory_bytes")
	return m
}
