//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/yaml"

	"github.com/sc-extension/sc-extension/e2e/testbed/apiwrites"
	"github.com/sc-extension/sc-extension/e2e/testbed/previous"
	"github.com/sc-extension/sc-extension/pkg/agent/drift"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/job/jobrun"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// mixedReq is one request the test sent and the final phase it expects.
type mixedReq struct {
	name, id string
	want     connection.Phase
}

// TestMixedVersionRollingUpdate rolls two agent replicas from v0.1.0 to
// the working tree while requests flow, and counts, from the API server's
// own view (e2e/testbed/apiwrites), what each version wrote:
//
//  1. the shared release is uninstalled and v0.1.0 installed with two
//     replicas; connections of three auth types are created and Succeed;
//  2. `helm upgrade` to the working tree (two replicas) runs while a
//     sequence of creates, credential updates and deletes goes on; pods of
//     both images are Ready at one moment (seen in a pod watch), and the
//     Lease holder's image is followed; once converged, v0.1.0's
//     render-all sc-job runs under the new leader (an old sc-job that
//     outlived its leader, forced instead of left to timing);
//  3. every record got at most the writes its requests explain (the
//     store's write path: recordBounds), no record went back to an older
//     request or generation or was marked Drift, no rendered object
//     returned to an earlier content; which release wrote a record is read
//     off the write itself (only this one stamps schemaVersion): some
//     record was written by both, and v0.1.0 wrote over this release only
//     through an sc-job run that outlived its leader;
//  4. after convergence a barrier request, rendered by the new leader,
//     finds zero writes to the settled records and rendered objects since.
//
// The shared install is restored (working tree, one replica) at cleanup.
func TestMixedVersionRollingUpdate(t *testing.T) {
	e := product(t)
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	cs := e.cluster.Clientset
	status := e.followStatus(t)
	rel := previousRelease(ctx, t)

	// Cleanups run last-registered first: the shared release is restored,
	// then the connections are deleted through it, then the namespace goes.
	ns := e.targetNamespace(t)
	live := map[string]string{}
	e.deleteAllAtCleanup(t, live)
	e.replaceSharedRelease(t, rel, 2)
	oldImage := agentImage(ctx, t, e)
	require.Contains(t, oldImage, ":"+rel.ImageTag)

	roll := e.watchRollout(ctx, t, oldImage)
	before, err := apiwrites.Scrape(ctx, cs)
	require.NoError(t, err)
	targets := []apiwrites.Target{
		{Resource: apiwrites.ConfigMaps, Namespace: systemNS, LabelSelector: record.Selector},
		// Unselected: the barrier's marks are unlabelled objects of ns.
		{Resource: apiwrites.Secrets, Namespace: ns},
		{Resource: apiwrites.ServiceAccounts, Namespace: ns},
	}
	rec, err := apiwrites.Start(ctx, cs, targets...)
	require.NoError(t, err)
	t.Cleanup(rec.Stop)

	// On v0.1.0: connections that will be updated (keep*), and ones no
	// request touches again (still*: secret, workload identity, service
	// principal).
	var sent []mixedReq
	create := func(name string, spec connection.Spec, creds connection.Credentials) {
		id, err := e.cp.Create(ctx, spec, creds)
		require.NoError(t, err)
		live[name] = id
		sent = append(sent, mixedReq{name: name, id: id, want: connection.PhaseSucceeded})
	}
	specs := map[string]connection.Spec{}
	for i, auth := range []catalog.AuthType{catalog.AuthSecret, catalog.AuthSecret, catalog.AuthSecret,
		catalog.AuthWorkloadIdentity, catalog.AuthWorkloadIdentity, catalog.AuthServicePrincipal} {
		name := uniq(fmt.Sprintf("mixstill%d", i))
		if i < 2 {
			name = uniq(fmt.Sprintf("mixkeep%d", i))
		}
		spec, creds := buildSpec(t, name, ns, catalog.TargetStorageBlob, auth, blobID)
		specs[name] = spec
		create(name, spec, creds)
	}
	awaitMixedFinals(t, status, sent)
	t.Logf("%d connections Succeeded on %s", len(sent), previousVersion)

	// The rolling update, with requests flowing until it is over.
	upgraded, helmDone := make(chan error, 1), make(chan struct{})
	// A failing test restores the release only once helm has returned
	// (helm refuses a second operation on a release in progress).
	t.Cleanup(func() { <-helmDone })
	go func() {
		defer close(helmDone)
		out, err := tryHelm(e.cluster.Kubeconfig, e.helm, e.helmArgs("upgrade", "--set", "replicaCount=2")...)
		if err != nil {
			err = fmt.Errorf("helm upgrade to the working tree: %w\n%s", err, out)
		}
		upgraded <- err
	}()
	flow, err := e.mixedFlow(ctx, ns, specs, live, upgraded)
	sent = append(sent, flow...)
	require.NoError(t, err)
	awaitMixedFinals(t, status, sent)
	newImage := agentImage(ctx, t, e)
	require.NotEqual(t, oldImage, newImage)

	// Converged: only new agents, no sc-job, every live record Succeeded
	// at its last request, every deleted one gone.
	e.awaitMixedConverged(t, live, sent, newImage)
	// The old sc-job outliving its leader, forced rather than left to
	// timing: v0.1.0's render-all run under the new leader.
	e.runPreviousRenderAll(ctx, t, rel)
	e.awaitMixedConverged(t, live, sent, newImage)
	settledAt, err := apiwrites.Revision(ctx, cs, systemNS)
	require.NoError(t, err)
	settled, err := apiwrites.Scrape(ctx, cs)
	require.NoError(t, err)

	// Both versions ran at once, and who led when.
	spells, overlap, jobImages := roll.report()
	for _, s := range spells {
		t.Logf("leader %s (%s) from %s", s.holder, s.image, s.since.Format(time.RFC3339Nano))
	}
	require.NotEmpty(t, overlap, "pods of both images Ready at one moment")
	t.Logf("both versions Ready at once: %s", overlap)
	var known []leaderSpell // a holder gone before the watch (the uninstalled release's) has no image
	for _, s := range spells {
		if s.image != "unknown" {
			known = append(known, s)
		}
	}
	require.NotEmpty(t, known, "an agent held the Lease")
	assert.Equal(t, oldImage, known[0].image, "an old agent led first")
	assert.Equal(t, newImage, known[len(known)-1].image, "a new agent leads at the end")
	var runs []jobPod
	for _, j := range jobImages {
		runs = append(runs, j)
	}
	sort.Slice(runs, func(i, k int) bool { return runs[i].started.Before(runs[k].started) })
	newSince := time.Time{}
	for _, s := range known {
		if s.image == newImage {
			newSince = s.since
			break
		}
	}
	oldUnderNew := 0
	for _, j := range runs {
		t.Logf("run %s", j)
		if !strings.HasSuffix(j.image, ":"+rel.ImageTag) {
			continue
		}
		if j.ended.IsZero() || j.ended.After(newSince) {
			oldUnderNew++
		}
	}
	t.Logf("%d %s sc-job runs still running when a new agent took the Lease at %s", oldUnderNew, previousVersion, newSince.Format("15:04:05.000"))

	// The barrier: one more request through the new leader.
	barrier := uniq("mixbarrier")
	bspec, bcreds := buildSpec(t, barrier, ns, catalog.TargetStorageBlob, catalog.AuthWorkloadIdentity, blobID)
	bid, err := e.cp.Create(ctx, bspec, bcreds)
	require.NoError(t, err)
	live[barrier] = bid
	awaitMixedFinals(t, status, []mixedReq{{name: barrier, id: bid, want: connection.PhaseSucceeded}})
	lease, err := cs.CoordinationV1().Leases(systemNS).Get(ctx, agentLease, metav1.GetOptions{})
	require.NoError(t, err)
	leader, err := cs.CoreV1().Pods(systemNS).Get(ctx, *lease.Spec.HolderIdentity, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, newImage, leader.Spec.Containers[0].Image, "the barrier went through a new leader")
	ends := e.markStreams(ctx, t, rec, ns, barrier)
	after, err := apiwrites.Scrape(ctx, cs)
	require.NoError(t, err)
	require.NoError(t, rec.Err(), "a watch ended: counts would be incomplete")

	writes := rec.Writes()
	window := mixedWindow(writes, rec, targets, settledAt)
	hookPods := roll.hookPods()
	assertFinalsRepeatOnlyRerenders(t, status, append(sent, mixedReq{name: barrier, id: bid, want: connection.PhaseSucceeded}), hookPods)
	backflips := 0 // the Lease back to an old agent after a new one led
	for i := 1; i < len(known); i++ {
		if known[i].image == oldImage && known[i-1].image != oldImage {
			backflips++
		}
	}
	// Each old sc-job run that outlived its leader may write a claim and an
	// outcome over a new write; an old agent that took the Lease back
	// could write anything its requests explain, so then no bound.
	oldAfterNew := 2 * oldUnderNew
	if backflips > 0 {
		t.Logf("the Lease went back to an old agent %d times: old writes after new ones are not bounded", backflips)
		oldAfterNew = len(sent) * 100
	}
	e.assertRecordWrites(t, window, sent, hookPods, oldAfterNew)
	assertRenderedWrites(t, window, sent, specs)
	assertBarrier(t, writes, settledAt, ends, barrier)

	d1, err := settled.Sub(before)
	require.NoError(t, err)
	// The two views agree: the watch cannot see more record writes than
	// the API server served ConfigMap write requests (a finalizer release
	// is a PUT the watch shows as DELETED).
	seen := 0
	for _, w := range window {
		if w.Key.Resource == apiwrites.ConfigMaps {
			seen++
		}
	}
	served := 0.0
	for _, verb := range apiwrites.WriteVerbs {
		served += d1.Count(verb, apiwrites.ConfigMaps, "")
	}
	assert.LessOrEqual(t, float64(seen), served, "record writes seen by the watch vs ConfigMap write requests served")
	t.Logf("record writes: %d seen by the watch, %g ConfigMap write requests served", seen, served)
	d2, err := after.Sub(settled)
	require.NoError(t, err)
	t.Logf("apiserver_request_total, %s install to convergence: %s; of them PUT configmaps refused with 409: %g", previousVersion,
		d1.Summary(), d1.Count("PUT", apiwrites.ConfigMaps, "409"))
	t.Logf("apiserver_request_total, convergence to barrier: %s", d2.Summary())
	t.Logf("mixed-version test: %d requests, %s", len(sent)+1, time.Since(began).Round(time.Second))
}

// previousRenderJob is the render hook's own name: sc-job may read and
// delete only its own Job by name (RBAC), and helm deleted its hook Job
// once it succeeded, so the name is free again.
const previousRenderJob = "sc-job-render"

// runPreviousRenderAll runs the previous release's `sc-job --render-all`
// (its chart's hook Job, rendered by helm template) once, and waits until
// it succeeded and removed itself.
func (e *env) runPreviousRenderAll(ctx context.Context, t *testing.T, rel *previous.Release) {
	t.Helper()
	jobs := e.cluster.Clientset.BatchV1().Jobs(systemNS)
	sv, err := e.cluster.Clientset.Discovery().ServerVersion()
	require.NoError(t, err)
	out, err := tryHelm(e.cluster.Kubeconfig, e.helm, "template", release, rel.Chart, "-n", systemNS, "--kube-version", sv.GitVersion,
		"--show-only", "templates/job-render-hook.yaml", "--set", "cluster.id="+clusterID, "--set", "nats.url="+e.podNATSURL,
		"--set", "image.tag="+rel.ImageTag, "--set", "logLevel=debug")
	require.NoError(t, err, "helm template of the previous render hook:\n%s", out)
	var job batchv1.Job
	require.NoError(t, yaml.Unmarshal([]byte(out), &job))
	require.Equal(t, "Job", job.Kind)
	require.Equal(t, previousRenderJob, job.Name)
	job.Annotations = nil // not a hook: helm is not running
	_, err = jobs.Create(ctx, &job, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		bg := metav1.DeletePropagationBackground
		_ = jobs.Delete(context.Background(), previousRenderJob, metav1.DeleteOptions{PropagationPolicy: &bg})
	})
	eventually(t, 3*time.Minute, "the previous release's render-all run to succeed", func(ctx context.Context) (bool, error) {
		j, err := jobs.Get(ctx, previousRenderJob, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil // succeeded: it removed itself
		}
		if err != nil {
			return false, err
		}
		if jobFailed(j) {
			logs, _ := jobLogs(ctx, e.cluster.Clientset, systemNS, previousRenderJob)
			t.Fatalf("the previous release's render-all failed:\n%s", logs)
		}
		return j.Status.Succeeded > 0, nil
	})
}

// mixedFlow sends, one after the other and each awaited, a create, a
// credential update of a keep* connection and a delete of the previous
// create, until the upgrade returned and one more round finished: requests
// are in flight during the whole rollout and after it.
func (e *env) mixedFlow(ctx context.Context, ns string, specs map[string]connection.Spec, live map[string]string,
	upgraded <-chan error) ([]mixedReq, error) {
	var sent []mixedReq
	await := func(name, id string, want connection.Phase) error {
		sent = append(sent, mixedReq{name: name, id: id, want: want})
		wctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		ev, err := e.cp.Wait(wctx, name, id, nil)
		if err != nil {
			return fmt.Errorf("%s (request %s): %w", name, id, err)
		}
		if ev.Phase != want {
			return fmt.Errorf("%s (request %s): %s/%s %s, want %s", name, id, ev.Phase, ev.Reason, ev.Message, want)
		}
		return nil
	}
	var keeps []string
	for name := range specs {
		if strings.HasPrefix(name, "mixkeep") {
			keeps = append(keeps, name)
		}
	}
	sort.Strings(keeps)
	var upErr error
	done, prev := false, ""
	for i := 0; ; i++ {
		if done {
			break // the round after the upgrade returned has finished
		}
		select {
		case upErr = <-upgraded:
			done = true
		default:
		}
		if i >= 40 {
			return sent, errors.New("the upgrade did not end within 40 rounds of requests")
		}
		name := uniq(fmt.Sprintf("mixflow%d", i))
		spec, creds, err := specFor(name, ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
		if err != nil {
			return sent, err
		}
		id, err := e.cp.Create(ctx, spec, creds)
		if err != nil {
			return sent, err
		}
		live[name] = id
		if err := await(name, id, connection.PhaseSucceeded); err != nil {
			return sent, err
		}
		keep := keeps[i%len(keeps)]
		_, creds, err = specFor(keep, ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
		if err != nil {
			return sent, err
		}
		if id, err = e.cp.Update(ctx, specs[keep], creds); err != nil {
			return sent, err
		}
		live[keep] = id
		if err := await(keep, id, connection.PhaseSucceeded); err != nil {
			return sent, err
		}
		if prev != "" {
			if id, err = e.cp.Delete(ctx, prev, true); err != nil {
				return sent, err
			}
			delete(live, prev)
			if err := await(prev, id, connection.PhaseDeleted); err != nil {
				return sent, err
			}
		}
		prev = name
	}
	return sent, upErr
}

// awaitMixedFinals waits until every request has a final status the
// control plane heard, then checks the first is of the phase wanted.
func awaitMixedFinals(t *testing.T, status *statusLog, reqs []mixedReq) {
	t.Helper()
	ids := map[string]string{}
	for _, r := range reqs {
		ids[r.id] = r.id
	}
	status.awaitHeard(t, 5*time.Minute, ids)
	for _, r := range reqs {
		f := status.finals(r.id)[0]
		assert.Equal(t, r.want, f.Phase, "%s: %s %s", r.name, f.Reason, f.Message)
	}
}

// assertFinalsRepeatOnlyRerenders: a request's final status is heard once,
// and again only when a render-hook pod re-rendered its connection (at most
// once per hook pod), with the same phase and generation; a request
// reported Succeeded, then otherwise, would be two versions disagreeing.
func assertFinalsRepeatOnlyRerenders(t *testing.T, status *statusLog, reqs []mixedReq, hookPods int) {
	t.Helper()
	repeated := 0
	for _, r := range reqs {
		finals := status.finals(r.id)
		if !assert.NotEmpty(t, finals, r.name) {
			continue
		}
		repeated += len(finals) - 1
		assert.LessOrEqual(t, len(finals), 1+hookPods, "%s (request %s): final statuses beyond one per render-hook run", r.name, r.id)
		for _, f := range finals[1:] {
			assert.Equal(t, finals[0].Phase, f.Phase, "%s (request %s) reported %s, then %s/%s", r.name, r.id, finals[0].Phase, f.Phase, f.Reason)
			assert.Equal(t, finals[0].Generation, f.Generation, "%s (request %s)", r.name, r.id)
		}
	}
	t.Logf("final statuses: %d requests, %d repeated by a re-render", len(reqs), repeated)
}

// awaitMixedConverged waits until only new agents run (two, Ready, none
// terminating), no sc-job or render hook exists, every live connection's
// record is Succeeded at its last request and every deleted one is gone.
func (e *env) awaitMixedConverged(t *testing.T, live map[string]string, sent []mixedReq, newImage string) {
	t.Helper()
	cs := e.cluster.Clientset
	deleted := map[string]string{}
	for _, r := range sent {
		if r.want == connection.PhaseDeleted {
			deleted[r.name] = r.id
		}
	}
	eventually(t, 5*time.Minute, "the rollout and every connection to converge", func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(systemNS).List(ctx, metav1.ListOptions{LabelSelector: agentSelector})
		if err != nil {
			return false, err
		}
		n := 0
		for _, p := range pods.Items {
			if p.Spec.Containers[0].Image != newImage || p.DeletionTimestamp != nil || !podReady(&p) {
				return false, fmt.Errorf("agent pod %s (%s) is not a Ready new agent", p.Name, p.Spec.Containers[0].Image)
			}
			n++
		}
		if n != 2 {
			return false, fmt.Errorf("%d agents", n)
		}
		jobs, err := cs.BatchV1().Jobs(systemNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, j := range jobs.Items {
			if j.Status.CompletionTime == nil || j.Name == jobName {
				return false, fmt.Errorf("Job %s still there", j.Name)
			}
		}
		recs, err := e.recordsOf(ctx, live)
		if err != nil {
			return false, err
		}
		for name, id := range live {
			c, ok := recs[name]
			if !ok || c.Status.Phase != connection.PhaseSucceeded || c.Status.LastRequestID != id {
				return false, fmt.Errorf("%s is not Succeeded at its last request %s: %+v", name, id, c.Status)
			}
		}
		gone, err := e.recordsOf(ctx, deleted)
		if err != nil {
			return false, err
		}
		if len(gone) > 0 {
			return false, fmt.Errorf("%d deleted records left", len(gone))
		}
		return true, nil
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// rolloutLog follows sc-system's pods and the agents' Lease from the API:
// which agent pods of which image were Ready together, who held the
// Lease, and which sc-job and render-hook pods ran with which image.
type rolloutLog struct {
	oldImage string

	mu      sync.Mutex
	agents  map[string]corev1.Pod
	overlap string // the first moment both images were Ready at once
	spells  []leaderSpell
	jobPods map[string]jobPod // runs that started after the watch did
	before  map[string]bool   // job pods that existed when it started
}

// jobPod is one sc-job or render-hook run, with when the watch first saw
// it and saw it end.
type jobPod struct {
	job, image     string
	started, ended time.Time
}

func (j jobPod) String() string {
	return fmt.Sprintf("%s %s %s..%s", j.job, j.image, j.started.Format("15:04:05.000"), j.ended.Format("15:04:05.000"))
}

type leaderSpell struct {
	holder, image string
	since         time.Time
}

func (e *env) watchRollout(ctx context.Context, t *testing.T, oldImage string) *rolloutLog {
	t.Helper()
	cs := e.cluster.Clientset
	l := &rolloutLog{oldImage: oldImage, agents: map[string]corev1.Pod{}, jobPods: map[string]jobPod{},
		before: map[string]bool{}}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	follow := func(what string, lw *cache.ListWatch, on func(o runtime.Object, gone, listed bool)) {
		list, err := lw.ListWithContext(ctx, metav1.ListOptions{})
		require.NoError(t, err, "list %s", what)
		items, err := meta.ExtractList(list)
		require.NoError(t, err)
		for _, o := range items {
			on(o, false, true)
		}
		lm, err := meta.ListAccessor(list)
		require.NoError(t, err)
		w, err := watchtools.NewRetryWatcherWithContext(ctx, lm.GetResourceVersion(), lw)
		require.NoError(t, err, "watch %s", what)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.ResultChan():
					if !ok {
						return
					}
					if ev.Type == watch.Added || ev.Type == watch.Modified || ev.Type == watch.Deleted {
						on(ev.Object, ev.Type == watch.Deleted, false)
					}
				}
			}
		}()
	}
	pods := cs.CoreV1().Pods(systemNS)
	follow("pods", &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return pods.List(ctx, o) },
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return pods.Watch(ctx, o)
		},
	}, func(o runtime.Object, gone, listed bool) { l.onPod(o.(*corev1.Pod), gone, listed) })
	leases := cs.CoordinationV1().Leases(systemNS)
	byName := fields.OneTermEqualSelector("metadata.name", agentLease).String()
	follow("the Lease", &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return leases.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return leases.Watch(ctx, o)
		},
	}, func(o runtime.Object, _, _ bool) { l.onLease(o.(*coordinationv1.Lease)) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if t.Failed() {
			spells, overlap, jobs := l.report()
			t.Logf("rollout: overlap %q, leaders %+v, job pods %v", overlap, spells, jobs)
		}
	})
	return l
}

func (l *rolloutLog) onPod(p *corev1.Pod, gone, listed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if job := p.Labels["job-name"]; job != "" {
		// A run that existed before the watch (the previous release's
		// install hook) is not one of the window's.
		if listed {
			l.before[p.Name] = true
		}
		if l.before[p.Name] {
			return
		}
		jp := l.jobPods[p.Name]
		jp.job, jp.image = job, p.Spec.Containers[0].Image
		if jp.started.IsZero() {
			jp.started = time.Now()
		}
		if jp.ended.IsZero() && (gone || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
			jp.ended = time.Now()
		}
		l.jobPods[p.Name] = jp
		return
	}
	if p.Labels["app.kubernetes.io/component"] != "agent" {
		return
	}
	if gone {
		delete(l.agents, p.Name)
	} else {
		l.agents[p.Name] = *p
	}
	if l.overlap != "" {
		return
	}
	var old, other []string
	for _, a := range l.agents {
		if a.DeletionTimestamp != nil || !podReady(&a) {
			continue
		}
		if img := a.Spec.Containers[0].Image; img == l.oldImage {
			old = append(old, a.Name)
		} else {
			other = append(other, a.Name+" ("+img+")")
		}
	}
	if len(old) > 0 && len(other) > 0 {
		sort.Strings(old)
		sort.Strings(other)
		l.overlap = fmt.Sprintf("%s: %s (%s) and %s", time.Now().Format(time.RFC3339Nano), strings.Join(old, ", "), l.oldImage,
			strings.Join(other, ", "))
	}
}

func (l *rolloutLog) onLease(lease *coordinationv1.Lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	if holder == "" || (len(l.spells) > 0 && l.spells[len(l.spells)-1].holder == holder) {
		return
	}
	image := "unknown"
	if p, ok := l.agents[holder]; ok {
		image = p.Spec.Containers[0].Image
	}
	l.spells = append(l.spells, leaderSpell{holder: holder, image: image, since: time.Now()})
}

func (l *rolloutLog) report() ([]leaderSpell, string, map[string]jobPod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	jobs := map[string]jobPod{}
	for k, v := range l.jobPods {
		jobs[k] = v
	}
	return append([]leaderSpell(nil), l.spells...), l.overlap, jobs
}

// hookPods is how many render-hook pods ran: v0.1.0's mark every record
// Pending once; this release's mark nothing but are counted too, which
// keeps the bounds that use them loose (writes are classed by the state
// they leave, not by their writer: see recordBounds).
func (l *rolloutLog) hookPods() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, j := range l.jobPods {
		if j.job != jobName {
			n++
		}
	}
	return n
}

// markStreams ends the barrier on every watched stream: the barrier's
// Succeeded record write ends the records' stream; an unlabelled Secret
// and ServiceAccount the test writes into ns after it end the others (a
// watch delivers a resource's writes in order, so once a mark is seen,
// every write before it was). It returns the end revision per resource.
func (e *env) markStreams(ctx context.Context, t *testing.T, rec *apiwrites.Recorder, ns, barrier string) map[apiwrites.Resource]uint64 {
	t.Helper()
	cs := e.cluster.Clientset
	cmName := connection.ConfigMapName(connection.ObjectID(barrier))
	ends := map[apiwrites.Resource]uint64{}
	require.NoError(t, rec.Await(ctx, func(ws []apiwrites.Write) bool {
		for _, w := range ws {
			if w.Key.Name != cmName || w.Key.Resource != apiwrites.ConfigMaps {
				continue
			}
			if c, err := record.Decode(w.Object.(*corev1.ConfigMap)); err == nil && c.Status.Phase == connection.PhaseSucceeded {
				ends[apiwrites.ConfigMaps] = w.Revision
				return true
			}
		}
		return false
	}), "the barrier's Succeeded write seen")
	const mark = "e2e-mixed-barrier-mark"
	sec, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: mark}}, metav1.CreateOptions{})
	require.NoError(t, err)
	sa, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: mark}}, metav1.CreateOptions{})
	require.NoError(t, err)
	for res, rv := range map[apiwrites.Resource]string{apiwrites.Secrets: sec.ResourceVersion, apiwrites.ServiceAccounts: sa.ResourceVersion} {
		require.NoError(t, rec.Await(ctx, func(ws []apiwrites.Write) bool {
			for _, w := range ws {
				if w.Key.Resource == res && w.Key.Name == mark && w.ResourceVersion == rv {
					ends[res] = w.Revision
					return true
				}
			}
			return false
		}), "the %s mark seen", res)
	}
	return ends
}

// mixedWindow keeps the writes from the recorder's start to settledAt.
func mixedWindow(ws []apiwrites.Write, rec *apiwrites.Recorder, targets []apiwrites.Target, settledAt uint64) []apiwrites.Write {
	var out []apiwrites.Write
	for _, t := range targets {
		for _, w := range apiwrites.Between(ws, rec.StartRevision(t), settledAt) {
			if w.Key.Resource == t.Resource {
				out = append(out, w)
			}
		}
	}
	return out
}

// recordBounds are the writes the store's write path allows one record
// (docs/store.md), per kind of write, for the requests it got and the
// render-hook pods that ran while it existed:
//   - intake: the one POST or PUT of each request (the commit point; the
//     credential Secret is another object);
//   - renderAll: one MarkPending per render-hook pod (only v0.1.0's write
//     it, but a later write that keeps its status, such as this release's
//     owned-only write, is classed so too);
//   - claim (Running): each intake or renderAll write makes the record due
//     once, and each runner may claim it once. The launcher keeps one
//     sc-job at a time (leaders never act at once), but a render-hook pod
//     may run beside it, and a Running record is due, so both may claim
//     it: runners = 1 + hook pods;
//   - outcome (Succeeded, Failed, Pending/Retrying): one per claim;
//   - ownedOnly: the owned UIDs alone, written by a run a newer request
//     overtook: at most one per request after the first;
//   - terminating: the DELETE of each delete request (the finalizer's
//     release then ends in DELETED, counted apart).
//
// These follow v0.1.0's write path, the looser of the two releases' (this
// one writes one status per run and nothing for an unchanged re-render).
// Two writers fighting exceed them; a single undo may not, which is what
// the no-going-back checks are for.
func recordBounds(requests, deletes, hookPods int) map[string]int {
	runners := 1 + hookPods
	claims := (requests + hookPods) * runners
	return map[string]int{"intake": requests, "renderAll": hookPods, "claim": claims, "outcome": claims,
		"ownedOnly": max(requests-1, 0), "terminating": deletes, "deleted": deletes}
}

// assertRecordWrites checks each record's writes against recordBound and
// that no write took a record back to an older request or generation (a
// writer undoing another's write), and logs the counts.
func (e *env) assertRecordWrites(t *testing.T, window []apiwrites.Write, sent []mixedReq, hookPods, oldAfterNew int) {
	t.Helper()
	requests, deletes := map[string]int{}, map[string]int{}
	order := map[string][]string{} // request ids per connection, in sending order
	for _, r := range sent {
		requests[r.name]++
		if r.want == connection.PhaseDeleted {
			deletes[r.name]++
		}
		order[r.name] = append(order[r.name], r.id)
	}
	byRecord := map[string][]apiwrites.Write{}
	for _, w := range window {
		if w.Key.Resource == apiwrites.ConfigMaps {
			byRecord[w.Key.Name] = append(byRecord[w.Key.Name], w)
		}
	}
	total, names := 0, make([]string, 0, len(requests))
	byVersion := map[string]int{}
	mixed := 0 // records both versions wrote
	for name := range requests {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cm := connection.ConfigMapName(connection.ObjectID(name))
		ws := byRecord[cm]
		delete(byRecord, cm)
		total += len(ws)
		bounds := recordBounds(requests[name], deletes[name], hookPods)
		bound := 0
		for _, b := range bounds {
			bound += b
		}
		var trail []string
		classes := map[string]int{}
		lastReq, lastGen, lastObserved, prevReq := -1, int64(0), int64(0), ""
		writers, reverts, lastWriter := map[string]bool{}, 0, ""
		for _, w := range ws {
			c, err := record.Decode(w.Object.(*corev1.ConfigMap))
			if w.Type == watch.Deleted || err != nil {
				trail = append(trail, fmt.Sprintf("%s@%d", w.Type, w.Revision))
				if w.Type == watch.Deleted {
					classes["deleted"]++
				} else {
					classes["undecodable"]++
				}
				continue
			}
			trail = append(trail, fmt.Sprintf("%s@%d:%s/%s gen=%d req=%s by %s", w.Type, w.Revision, c.Status.Phase, c.Status.Reason,
				c.Generation, short(c.Status.LastRequestID), writerOf(w.Object.(*corev1.ConfigMap))))
			if cm := w.Object.(*corev1.ConfigMap); cm.DeletionTimestamp != nil {
				classes["terminating"]++ // the DELETE: the content is the last writer's
			} else {
				classes[writeClass(w.Type, c, prevReq)]++
				writer := writerOf(cm)
				byVersion[writer]++
				writers[writer] = true
				if lastWriter == "new" && writer == "old" {
					reverts++
				}
				lastWriter = writer
			}
			prevReq = c.Status.LastRequestID
			// Only sc-job writes rendered objects here: a drift mark means
			// two sc-job versions disagree on one (or drift misjudged it).
			assert.NotEqual(t, drift.ReasonDrift, c.Status.Reason, "%s marked drifted at revision %d: %s", name, w.Revision, c.Status.Message)
			idx := indexOf(order[name], c.Status.LastRequestID)
			assert.GreaterOrEqual(t, idx, lastReq, "%s went back to an older request at revision %d", name, w.Revision)
			assert.GreaterOrEqual(t, c.Generation, lastGen, "%s went back to an older generation at revision %d", name, w.Revision)
			assert.GreaterOrEqual(t, c.Status.ObservedGeneration, lastObserved, "%s's observedGeneration went back at revision %d", name, w.Revision)
			lastReq, lastGen, lastObserved = max(lastReq, idx), c.Generation, c.Status.ObservedGeneration
		}
		ok := true
		for class, n := range classes {
			ok = assert.LessOrEqual(t, n, bounds[class], "%s: %s writes beyond what its %d requests and %d render-hook runs explain",
				name, class, requests[name], hookPods) && ok
		}
		// The previous release drops schemaVersion on each write: after a
		// new write, only an old sc-job that outlived its leader (or an old
		// agent that took the Lease back) may write again.
		ok = assert.LessOrEqual(t, reverts, oldAfterNew, "%s: the previous release wrote over this release's write %d times", name, reverts) && ok
		if len(writers) == 2 {
			mixed++
		}
		if !ok {
			t.Logf("%s: %s", name, strings.Join(trail, " | "))
		}
		t.Logf("record %s: %d writes for %d requests (bound %d): %v", name, len(ws), requests[name], bound, classes)
	}
	for cm, ws := range byRecord {
		t.Errorf("record %s written %d times, though the test sent it no request", cm, len(ws))
	}
	assert.Positive(t, mixed, "some record was written by both versions")
	t.Logf("records: %d writes for %d requests and %d render-hook pods; by writer %v; %d records written by both versions",
		total, len(sent), hookPods, byVersion, mixed)
}

// assertRenderedWrites checks that no rendered object returned to an
// earlier content (data-hash), which two writers fighting over it would
// do, and that each was written at most once per request of its
// connection plus once for a rendering the new release changed.
func assertRenderedWrites(t *testing.T, window []apiwrites.Write, sent []mixedReq, specs map[string]connection.Spec) {
	t.Helper()
	requests := map[string]int{}
	wiRequests := 0
	for _, r := range sent {
		requests[connection.SecretName(connection.ObjectID(r.name))]++
		if s, ok := specs[r.name]; ok && s.AuthInfo.AuthType == catalog.AuthWorkloadIdentity {
			wiRequests++
		}
	}
	byObject := map[apiwrites.Key][]apiwrites.Write{}
	for _, w := range window {
		if w.Key.Resource != apiwrites.ConfigMaps {
			byObject[w.Key] = append(byObject[w.Key], w)
		}
	}
	for key, ws := range byObject {
		if key.Name == "default" || strings.HasPrefix(key.Name, "default-token") {
			continue // the namespace's own, not rendered
		}
		var hashes []string
		for _, w := range ws {
			if w.Type == watch.Deleted {
				continue
			}
			m, err := meta.Accessor(w.Object)
			require.NoError(t, err)
			h := m.GetAnnotations()[connection.AnnotationDataHash]
			if len(hashes) > 0 && hashes[len(hashes)-1] != h {
				assert.NotContains(t, hashes, h, "%s returned to an earlier content at revision %d", key, w.Revision)
			}
			hashes = append(hashes, h)
		}
		bound := requests[key.Name] + 1
		if key.Resource == apiwrites.ServiceAccounts {
			bound = wiRequests + 1
		}
		assert.LessOrEqual(t, len(ws), bound, "%s: %d writes", key, len(ws))
		t.Logf("rendered %s: %d writes (bound %d)", key, len(ws), bound)
	}
}

// assertBarrier: between convergence and the barrier's end on each stream
// nothing but the barrier's own objects and the test's marks was written.
func assertBarrier(t *testing.T, ws []apiwrites.Write, settledAt uint64, ends map[apiwrites.Resource]uint64, barrier string) {
	t.Helper()
	id := connection.ObjectID(barrier)
	own := map[string]bool{
		connection.ConfigMapName(id): true, connection.SecretName(id): true, "e2e-mixed-barrier-mark": true,
	}
	n := 0
	for _, w := range ws {
		end, ok := ends[w.Key.Resource]
		if !ok || w.Revision <= settledAt || w.Revision > end {
			continue
		}
		if own[w.Key.Name] || (w.Key.Resource == apiwrites.ServiceAccounts && w.Type == watch.Added) {
			n++
			continue // the barrier's own writes (and a ServiceAccount it may create)
		}
		t.Errorf("%s written (%s, revision %d) after convergence, before the barrier finished", w.Key, w.Type, w.Revision)
	}
	t.Logf("barrier: %d writes of its own, none to settled objects, in revisions (%d, %v]", n, settledAt, ends)
}

// writerOf tells which release wrote a record: this one stamps
// schemaVersion on every write, v0.1.0 never did (and drops it).
func writerOf(cm *corev1.ConfigMap) string {
	if _, ok := cm.Data[record.KeySchemaVersion]; ok {
		return "new"
	}
	return "old"
}

// writeClass names what a record write was, by the request it names
// (prevReq: the one the record's previous write named) and the status it
// left.
func writeClass(typ watch.EventType, c connection.Connection, prevReq string) string {
	switch {
	case typ == watch.Added || c.Status.LastRequestID != prevReq:
		return "intake"
	case c.Status.Reason == jobrun.ReasonRenderAll:
		return "renderAll"
	case c.Status.Phase == connection.PhaseRunning:
		return "claim"
	case c.Status.Phase == connection.PhasePending && (c.Status.Reason == "Accepted" || c.Status.Reason == "DeleteRequested"):
		// a status write of a run a newer request overtook: the owned UIDs alone
		return "ownedOnly"
	default:
		return "outcome"
	}
}

func indexOf(ids []string, id string) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return -1
}

func short(id string) string { return id[:min(len(id), 8)] }
