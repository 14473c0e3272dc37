//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// warmBurst is issue 9's burst: creates sent one after another, each when
// the previous one's Secret is ready, against a direct write of the same
// Secret; and what sc-job's pods cost meanwhile.
type warmBurst struct {
	lat     []time.Duration // create -> rendered Secret
	direct  []time.Duration // direct Secret create -> its watch event
	wall    time.Duration   // first create -> last sc-job pod ended
	podTime time.Duration
	pods    int
	linger  string // the chart's job.linger default, if it has one
}

func (e *env) benchWarmBurst(t *testing.T, n int) warmBurst {
	ctx := context.Background()
	cs := e.cluster.Clientset
	ns := e.targetNamespace(t)
	out := warmBurst{linger: chartLinger(t)}
	e.awaitJobGone(t) // the first create starts a Job
	pods := e.watchPods(t, "job-name="+jobName, time.Now())
	var names []string
	var once sync.Once
	remove := func() { once.Do(func() { e.deleteAll(t, names) }) }
	t.Cleanup(remove)
	var first connection.Spec
	start := time.Now()
	for i := range n {
		spec, creds := buildSpec(t, uniq(fmt.Sprintf("burst%d", i)), ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
		if i == 0 {
			first = spec
		}
		w, err := cs.CoreV1().Secrets(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", connection.SecretName(spec.ID())).String()})
		require.NoError(t, err)
		sent := time.Now()
		_, err = e.cp.Create(ctx, spec, creds)
		require.NoError(t, err)
		names = append(names, spec.Name)
		waitWatch(t, w, watch.Added)
		out.lat = append(out.lat, time.Since(sent))
	}
	// The window ends with the last sc-job: lingering, then gone.
	e.awaitJobGone(t)
	out.podTime, out.pods = pods.cost(t)
	out.wall = time.Since(start)

	rendered, err := cs.CoreV1().Secrets(ns).Get(ctx, connection.SecretName(first.ID()), metav1.GetOptions{})
	require.NoError(t, err)
	out.direct = e.benchDirectSecret(t, rendered, n)
	remove()
	return out
}

// benchDirectSecret creates copies of a rendered Secret (its type and data,
// no labels) one after another with the testbed's client, each timed to
// its watch event.
func (e *env) benchDirectSecret(t *testing.T, like *corev1.Secret, runs int) []time.Duration {
	ctx := context.Background()
	ns := e.targetNamespace(t)
	secrets := e.cluster.Clientset.CoreV1().Secrets(ns)
	var out []time.Duration
	for i := range runs {
		name := fmt.Sprintf("direct%d", i)
		w, err := secrets.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
		require.NoError(t, err)
		start := time.Now()
		_, err = secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Type: like.Type, Data: like.Data}, metav1.CreateOptions{})
		require.NoError(t, err)
		waitWatch(t, w, watch.Added)
		out = append(out, time.Since(start))
	}
	return out
}

// podTimes keeps the last state of each pod a watch delivered and when a
// deleted one went.
type podTimes struct {
	mu      sync.Mutex
	last    map[types.UID]*corev1.Pod
	deleted map[types.UID]time.Time
	changed chan struct{}
}

// watchPods follows the pods of systemNS matching selector created from
// since on (whole seconds: the API's precision).
func (e *env) watchPods(t *testing.T, selector string, since time.Time) *podTimes {
	ctx, cancel := context.WithCancel(context.Background())
	w, err := e.cluster.Clientset.CoreV1().Pods(systemNS).Watch(ctx, metav1.ListOptions{LabelSelector: selector})
	require.NoError(t, err)
	p := &podTimes{last: map[types.UID]*corev1.Pod{}, deleted: map[types.UID]time.Time{}, changed: make(chan struct{})}
	t.Cleanup(func() { cancel(); w.Stop() })
	go func() {
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok || pod.CreationTimestamp.Time.Before(since.Truncate(time.Second)) {
				continue
			}
			p.mu.Lock()
			p.last[pod.UID] = pod
			if ev.Type == watch.Deleted {
				p.deleted[pod.UID] = time.Now()
			}
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	return p
}

// finishedAt is when a pod's container ended, from its status.
func finishedAt(p *corev1.Pod) (time.Time, bool) {
	var end time.Time
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Terminated == nil {
			return time.Time{}, false
		}
		if c.State.Terminated.FinishedAt.After(end) {
			end = c.State.Terminated.FinishedAt.Time
		}
	}
	return end, len(p.Status.ContainerStatuses) > 0
}

// cost waits until every pod seen has ended (its container terminated, or
// the pod deleted) and sums their run times: status.startTime to the
// container's finishedAt (seconds, as the API gives them), or to when the
// pod was seen deleted while still running.
func (p *podTimes) cost(t *testing.T) (time.Duration, int) {
	timeout := time.After(2 * time.Minute)
	for {
		p.mu.Lock()
		var sum time.Duration
		open, started := 0, 0
		for uid, pod := range p.last {
			if pod.Status.StartTime == nil {
				if _, gone := p.deleted[uid]; !gone {
					open++
				}
				continue
			}
			end, ok := finishedAt(pod)
			if !ok {
				if end, ok = p.deleted[uid]; !ok {
					open++
					continue
				}
			}
			started++
			sum += end.Sub(pod.Status.StartTime.Time)
		}
		changed := p.changed
		p.mu.Unlock()
		if open == 0 {
			return sum, started
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("%d sc-job pod(s) not seen to end", open)
		}
	}
}

// chartLinger is the chart's job.linger default, "" when it has none.
func chartLinger(t *testing.T) string {
	b, err := os.ReadFile(repoRoot(t) + "/chart/values.yaml")
	require.NoError(t, err)
	return lingerIn(string(b))
}

// lingerIn finds job.linger in a values.yaml: a key two spaces into the
// top-level job block.
func lingerIn(values string) string {
	inJob := false
	for _, line := range strings.Split(values, "\n") {
		if strings.HasPrefix(line, "job:") {
			inJob = true
			continue
		}
		if inJob && line != "" && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "#") {
			break
		}
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); inJob && ok && k == "linger" && strings.HasPrefix(line, "  linger") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (b warmBurst) rows(rep *report, n int) {
	d50 := percentile(b.direct, 50)
	sc := "sc-job with no lingering (the chart has no job.linger)"
	if b.linger != "" {
		sc = "sc-job lingering job.linger=" + b.linger + " (chart default)"
	}
	rep.add(fmt.Sprintf("burst: %d creates one after another, create -> Secret ready, p50; %s", n, sc), percentile(b.lat, 50),
		fmt.Sprintf("direct create of the same Secret -> its watch event, p50 (%d runs, same client)", len(b.direct)), d50)
	rep.add(fmt.Sprintf("burst: the same %d, p95", n), percentile(b.lat, 95),
		"direct create of the same Secret -> its watch event, p50", d50)
	rep.row(fmt.Sprintf("burst: sc-job pod-seconds over the %d (pod start -> container finished)", n),
		fmt.Sprintf("%.1fs in %d pods", b.podTime.Seconds(), b.pods), fmt.Sprintf("window: first create -> last sc-job gone = %s", b.wall.Round(time.Millisecond)),
		fmt.Sprintf("%.2f of the window", b.podTime.Seconds()/b.wall.Seconds()))
}

func TestLingerIn(t *testing.T) {
	values := "image:\n  linger: 1s\njob:\n  # -- a comment\n  backoffLimit: 1\n  linger: 10s\n  resources:\n    linger: 3s\nother: 2\n"
	require.Equal(t, "10s", lingerIn(values))
	require.Equal(t, "", lingerIn("job:\n  backoffLimit: 1\nlinger: 5s\n"))
}
