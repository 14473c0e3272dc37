//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/yaml"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// renderJob is the chart's post-install/post-upgrade hook Job (sc-job
// --render-all over every stored connection).
const renderJob = "sc-job-render"

// createTiming is one create, timed from publishing it to its rendered
// Secret's watch event and to its record's Succeeded (a watch, not a poll).
type createTiming struct {
	secret, succeeded time.Duration
}

func secretTimes(ts []createTiming) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, c := range ts {
		out[i] = c.secret
	}
	return out
}

func succeededTimes(ts []createTiming) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, c := range ts {
		out[i] = c.succeeded
	}
	return out
}

// timeCreate creates one connection and waits for both its Secret and its
// Succeeded record.
func (e *env) timeCreate(t *testing.T, name, ns string) createTiming {
	t.Helper()
	ctx := context.Background()
	cs := e.cluster.Clientset
	spec, creds := buildSpec(t, name, ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
	byName := func(n string) metav1.ListOptions {
		return metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", n).String()}
	}
	sw, err := cs.CoreV1().Secrets(ns).Watch(ctx, byName(connection.SecretName(spec.ID())))
	require.NoError(t, err)
	defer sw.Stop()
	rw, err := cs.CoreV1().ConfigMaps(systemNS).Watch(ctx, byName(connection.ConfigMapName(spec.ID())))
	require.NoError(t, err)
	defer rw.Stop()
	start := time.Now()
	_, err = e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	e.deleteAtCleanup(t, spec.Name)
	var out createTiming
	timeout := time.After(3 * time.Minute)
	for out.secret == 0 || out.succeeded == 0 {
		select {
		case ev, ok := <-sw.ResultChan():
			require.True(t, ok, "Secret watch closed")
			if ev.Type == watch.Added && out.secret == 0 {
				out.secret = time.Since(start)
			}
		case ev, ok := <-rw.ResultChan():
			require.True(t, ok, "record watch closed")
			cm, isCM := ev.Object.(*corev1.ConfigMap)
			if !isCM || out.succeeded != 0 {
				continue
			}
			if c, err := record.Decode(cm); err == nil && c.Status.Phase == connection.PhaseSucceeded {
				out.succeeded = time.Since(start)
			}
		case <-timeout:
			t.Fatalf("%s: no rendered Secret or Succeeded record within 3m (%+v)", name, out)
		}
	}
	return out
}

// benchCreates runs creates one at a time in a fresh namespace, each once
// the previous one is Succeeded; with cold, also once its sc-job has gone,
// so that every run starts a Job of its own.
func (e *env) benchCreates(t *testing.T, prefix string, runs int, cold bool) []createTiming {
	ns := e.targetNamespace(t)
	if cold {
		e.awaitJobGone(t)
	}
	var out []createTiming
	for i := range runs {
		out = append(out, e.timeCreate(t, uniq(fmt.Sprintf("%s%d", prefix, i)), ns))
		if cold {
			e.awaitJobGone(t)
		}
	}
	return out
}

// awaitJobGone waits until no sc-job of the agent runs: its Job gone, or
// finished and kept (a run keeps its Job when one of its pods failed; the
// agent replaces it when work arrives). Generous: a Job left by an
// earlier suite's uninstall waits out the Job controller's back-off.
func (e *env) awaitJobGone(t *testing.T) {
	eventually(t, 6*time.Minute, "no sc-job running", func(ctx context.Context) (bool, error) {
		j, err := e.cluster.Clientset.BatchV1().Jobs(systemNS).Get(ctx, jobName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return jobFinished(j), nil
	})
}

func jobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// newWorkFirst is issue 9's "new work first": runs creates while the
// render hook's sc-job --render-all re-renders every stored connection,
// started again as soon as it ends so that one runs throughout.
type newWorkFirst struct {
	idle    []createTiming // the same creates with no re-render running
	timings []createTiming
	renders []span // render pods: seen running -> seen ended
	covered int    // creates whose whole window lay inside one render pod's
}

type span struct{ from, to time.Time }

// benchNewWorkFirst sends the creates one after another (each once the
// previous one is Succeeded: a lingering sc-job may take the next), first
// with no re-render running, then during one; both start with no sc-job.
func (e *env) benchNewWorkFirst(t *testing.T, prefix string, runs int) newWorkFirst {
	var out newWorkFirst
	e.awaitJobGone(t)
	out.idle = e.benchCreates(t, prefix+"idle", runs, false)
	e.awaitJobGone(t)
	loop := e.startRenderLoop(t)
	loop.awaitRunning(t)
	ns := e.targetNamespace(t)
	var windows []span
	for i := range runs {
		from := time.Now()
		out.timings = append(out.timings, e.timeCreate(t, uniq(fmt.Sprintf("%s%d", prefix, i)), ns))
		windows = append(windows, span{from, time.Now()})
	}
	out.renders = loop.stop(t)
	for _, w := range windows {
		for _, r := range out.renders {
			if !r.from.After(w.from) && !r.to.Before(w.to) {
				out.covered++
				break
			}
		}
	}
	return out
}

// renderLoop creates the hook's Job (as `helm get hooks` shows it) again
// and again until stopped, and times its pods from the watch.
type renderLoop struct {
	e       *env
	tmpl    *batchv1.Job
	quit    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	running map[types.UID]time.Time
	spans   []span
	err     error
	changed chan struct{}
}

func (e *env) startRenderLoop(t *testing.T) *renderLoop {
	tmpl := e.renderHookJob(t)
	l := &renderLoop{e: e, tmpl: tmpl, quit: make(chan struct{}), done: make(chan struct{}),
		running: map[types.UID]time.Time{}, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := e.cluster.Clientset.CoreV1().Pods(systemNS).Watch(ctx, metav1.ListOptions{LabelSelector: "job-name=" + renderJob})
	require.NoError(t, err)
	go func() {
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok {
				l.observe(p, ev.Type == watch.Deleted)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		w.Stop()
	})
	go l.run(ctx)
	return l
}

func (l *renderLoop) observe(p *corev1.Pod, deleted bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	from, seen := l.running[p.UID]
	ended := deleted || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	switch {
	case !seen && p.Status.Phase == corev1.PodRunning:
		l.running[p.UID] = now
	case seen && !from.IsZero() && ended:
		l.spans = append(l.spans, span{from, now})
		l.running[p.UID] = time.Time{} // counted
	default:
		return
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// run creates the Job, waits for it to end and go, and starts it again.
func (l *renderLoop) run(ctx context.Context) {
	defer close(l.done)
	jobs := l.e.cluster.Clientset.BatchV1().Jobs(systemNS)
	for {
		select {
		case <-l.quit:
			return
		default:
		}
		job := l.tmpl.DeepCopy()
		if _, err := jobs.Create(ctx, job, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			l.fail(fmt.Errorf("create %s: %w", renderJob, err))
			return
		}
		// Ended: deleted by its own sc-job on success (helm's
		// hook-succeeded would), or complete; a failure stops the loop.
		err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, false, func(ctx context.Context) (bool, error) {
			j, err := jobs.Get(ctx, renderJob, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			if err != nil {
				return false, nil
			}
			if jobFailed(j) {
				return false, fmt.Errorf("%s failed", renderJob)
			}
			if j.Status.Succeeded > 0 && j.DeletionTimestamp == nil {
				bg := metav1.DeletePropagationBackground
				_ = jobs.Delete(ctx, renderJob, metav1.DeleteOptions{PropagationPolicy: &bg})
			}
			return false, nil
		})
		if err != nil {
			if ctx.Err() == nil {
				l.fail(err)
			}
			return
		}
	}
}

func (l *renderLoop) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
	close(l.changed)
	l.changed = make(chan struct{})
}

// awaitRunning waits until a render pod runs: its listing has started.
func (l *renderLoop) awaitRunning(t *testing.T) {
	timeout := time.After(3 * time.Minute)
	for {
		l.mu.Lock()
		n, err, changed := len(l.running), l.err, l.changed
		l.mu.Unlock()
		require.NoError(t, err)
		if n > 0 {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatal("no render pod running within 3m")
		}
	}
}

// stop lets the running render finish, then returns every render pod's span.
func (l *renderLoop) stop(t *testing.T) []span {
	close(l.quit)
	select {
	case <-l.done:
	case <-time.After(bulkTimeout(0)):
		t.Fatal("the last render Job did not end")
	}
	// The last pod ends just after its Job goes.
	timeout := time.After(time.Minute)
	for {
		l.mu.Lock()
		open, spans, err, changed := 0, append([]span(nil), l.spans...), l.err, l.changed
		for _, from := range l.running {
			if !from.IsZero() {
				open++
			}
		}
		l.mu.Unlock()
		require.NoError(t, err)
		if open == 0 {
			return spans
		}
		select {
		case <-changed:
		case <-timeout:
			t.Logf("%d render pod(s) not seen to end", open)
			return spans
		}
	}
}

// renderHookJob reads the hook Job of the installed release, as helm
// would create it.
func (e *env) renderHookJob(t *testing.T) *batchv1.Job {
	out := runHelm(t, e.cluster.Kubeconfig, "get", "hooks", release, "-n", systemNS)
	for _, doc := range strings.Split(out, "\n---") {
		var head struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if yaml.Unmarshal([]byte(doc), &head) != nil || head.Kind != "Job" || head.Metadata.Name != renderJob {
			continue
		}
		var j batchv1.Job
		require.NoError(t, yaml.Unmarshal([]byte(doc), &j))
		j.Namespace = systemNS
		for k := range j.Annotations {
			if strings.HasPrefix(k, "helm.sh/") {
				delete(j.Annotations, k)
			}
		}
		t.Cleanup(func() {
			bg := metav1.DeletePropagationBackground
			_ = e.cluster.Clientset.BatchV1().Jobs(systemNS).Delete(context.Background(), renderJob, metav1.DeleteOptions{PropagationPolicy: &bg})
		})
		return &j
	}
	t.Fatalf("helm get hooks shows no Job %s", renderJob)
	return nil
}

// spanDurations are the render pods' running times.
func spanDurations(s []span) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, x := range s {
		out[i] = x.to.Sub(x.from)
	}
	return out
}

func (w newWorkFirst) rows(rep *report, n int) {
	idle := w.idle
	i50, i95 := percentile(succeededTimes(idle), 50), percentile(succeededTimes(idle), 95)
	lat := succeededTimes(w.timings)
	rep.add(fmt.Sprintf("new work first: create -> Succeeded while sc-job --render-all re-renders %d, p50 (%d runs)", n, len(lat)), percentile(lat, 50),
		fmt.Sprintf("the same with no re-render running, p50 (%d runs)", len(idle)), i50)
	rep.add(fmt.Sprintf("new work first: the same during the re-render of %d, p95", n), percentile(lat, 95),
		fmt.Sprintf("the same with no re-render running, p95 (%d runs)", len(idle)), i95)
	rd := spanDurations(w.renders)
	took := "none seen running"
	if len(rd) > 0 {
		took = fmt.Sprintf("each ran p50 %s", percentile(rd, 50).Round(time.Millisecond))
	}
	rep.row(fmt.Sprintf("new work first: render-all runs over the %d, back to back, during the %d creates", n, len(lat)),
		fmt.Sprintf("%d runs; %d of %d creates inside one", len(rd), w.covered, len(lat)), took, "")
}
