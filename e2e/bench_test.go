//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/wire/natsbus"
)

// TestBenchReport is `make bench`: it measures the product on the local
// cluster and reports each figure as a ratio against a baseline measured in
// the same run, External Secrets Operator's included (docs/bench.md). It
// asserts nothing about speed; it runs only when SC_BENCH_OUT names the
// report file, and writes bench.svg beside it. BENCH_SCALE=N adds the
// N-connection run (issue 9: 10000), which is not part of CI.
func TestBenchReport(t *testing.T) {
	out := os.Getenv("SC_BENCH_OUT")
	if out == "" {
		t.Skip("set SC_BENCH_OUT (make bench) to run the benchmark report")
	}
	scale, err := benchScale(os.Getenv("BENCH_SCALE"))
	require.NoError(t, err)
	outDir := filepath.Dir(out)
	require.NoError(t, os.MkdirAll(outDir, 0o755))
	e := product(t)
	// The suite's shared release logs at debug, for diagnosing tests; the
	// bench measures the chart's default (info), as its rows claim.
	runHelm(t, e.cluster.Kubeconfig, e.helmArgs("upgrade", benchValues...)...)
	t.Cleanup(func() { runHelm(t, e.cluster.Kubeconfig, e.helmArgs("upgrade")...) })
	rep := report{machine: machine()}

	lat := secretTimes(e.benchCreates(t, "lat", 20, true))
	base := e.benchNoopJob(t, 5)
	p50, p95 := percentile(lat, 50), percentile(lat, 95)
	b50 := percentile(base, 50)
	rep.add("create -> Secret ready, p50 (20 runs)", p50, "no-op Job + 2 writes, p50", b50)
	rep.add("create -> Secret ready, p95 (20 runs)", p95, "no-op Job + 2 writes, p50", b50)
	const burstN = 100
	e.benchWarmBurst(t, burstN).rows(&rep, burstN)

	const n, nsCount = 1000, 50
	mem := e.agentMemory(t)
	idle := mem.read(t)
	peakFromHere := mem.resetPeak(t)
	stopCount := e.watchJobRuns(t)
	bulk := e.benchBulk(t, "bulk", n, nsCount)
	runs := stopCount()
	after := mem.read(t)
	// Over the thousand while they exist: an unchanged re-render, then new
	// work while one runs.
	rerender := e.benchUpgradeRerender(t, bulk)
	newWork := e.benchNewWorkFirst(t, "nwf", 20)
	plain := e.benchPlainClient(t, n, nsCount)
	w := esoWorkload(t, n, nsCount)
	plainSecrets := e.benchPlainSecrets(t, w, nsCount)
	esoRuns := e.benchESO(t, w, nsCount, outDir)

	what := fmt.Sprintf("%d connections / %d namespaces, requests sent -> all Succeeded", n, nsCount)
	rep.add(what, bulk.wall, "plain client-go loop, same objects", plain)
	for _, r := range esoRuns {
		rep.add(fmt.Sprintf("the same %d, against %s: its start -> %d Secrets", n, r.label, n), bulk.wall, "ESO", r.wall)
	}
	for _, r := range esoRuns {
		rep.add(r.label+", against a plain loop writing its Secrets", r.wall, fmt.Sprintf("plain client-go loop, the same %d Secrets", n), plainSecrets)
	}
	rep.row(fmt.Sprintf("sc-job runs for the %d", n), strconv.Itoa(runs), "", "")
	rep.row(fmt.Sprintf("API writes per created connection (apiserver_request_total over the %d: ConfigMaps, Secrets, ServiceAccounts, Events)", n),
		fmt.Sprintf("%.2f", bulk.writesPer), bulk.writes, "")
	rep.row(fmt.Sprintf("agent RSS idle / after %d / peak%s", n, peakNote(peakFromHere, n)),
		fmt.Sprintf("%s / %s / %s", mib(idle.RSS), mib(after.RSS), mib(after.Peak)), "", "")
	rerender.rows(&rep, n)
	newWork.rows(&rep, n)
	for _, r := range esoRuns {
		rep.row(r.label+": RSS at the end / peak; restarts after it died", fmt.Sprintf("%s / %s; %d", mib(r.mem.RSS), mib(r.mem.Peak), r.restarts), "", "")
	}
	bars := []chartBar{{label: "sc-extension, default settings", wall: bulk.wall, kind: "ours"}}
	for _, r := range esoRuns {
		note := fmt.Sprintf("(sc-extension: %.2fx this)", ratio(bulk.wall, r.wall))
		if r.restarts > 0 {
			note += fmt.Sprintf(", ESO restarted %d time(s)", r.restarts)
		}
		bars = append(bars, chartBar{label: r.short, wall: r.wall, kind: "peer", note: note})
	}
	bars = append(bars,
		chartBar{label: "plain client-go loop, sc-extension's objects", wall: plain, kind: "baseline", note: fmt.Sprintf("(sc-extension: %.2fx this)", ratio(bulk.wall, plain))},
		chartBar{label: "plain client-go loop, the Secrets only", wall: plainSecrets, kind: "baseline"})
	chart := barChart(fmt.Sprintf("%d connections / Secrets in %d namespaces, start to all ready", n, nsCount), rep.machine, bars)

	require.NoError(t, os.WriteFile(filepath.Join(outDir, "bench.svg"), []byte(chart), 0o644))
	// Written now, so a later row that fails keeps the comparison.
	require.NoError(t, os.WriteFile(out, []byte(rep.String()), 0o644))

	// The scale run starts from a cluster without the thousand; so does
	// the rotation, which measures rollouts, not the API server's load.
	bulk.remove()
	const rotations = 10
	e.benchRotation(t, rotations).rows(&rep, rotations)
	require.NoError(t, os.WriteFile(out, []byte(rep.String()), 0o644))
	if scale > 0 {
		e.benchAtScale(t, &rep, scale, nsCount)
	}
	text := rep.String()
	fmt.Println(text)
	require.NoError(t, os.WriteFile(out, []byte(text), 0o644))
}

// benchValues are the release's values for the whole bench, every helm
// upgrade of it included (an "unchanged" upgrade must not change them):
// the chart's default log level (the suite's shared release logs at debug,
// for diagnosing tests), and a 1 s restart window, as the rotation rows
// restart one Deployment seconds apart (the default 30 s would hold each
// run back).
var benchValues = []string{"--set", "logLevel=info", "--set", "job.restartWindow=1s"}

// benchScale reads BENCH_SCALE: empty or 0 for no scale run.
func benchScale(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("BENCH_SCALE=%q: want a number of connections", v)
	}
	return n, nil
}

func peakNote(fromHere bool, n int) string {
	if fromHere {
		return fmt.Sprintf(" (VmHWM during the %d)", n)
	}
	return " (VmHWM since the agent started)"
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// machine names where the figures were taken.
func machine() string {
	host, _ := os.Hostname()
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s on %s: %d CPUs (%s), %s", time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), model, memTotal())
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	m, err := parseMemTotal(string(b))
	if err != nil {
		return "memory unknown"
	}
	return fmt.Sprintf("%.1f GiB RAM", m/(1<<30))
}

func parseMemTotal(s string) (float64, error) {
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
			f := strings.Fields(v)
			if len(f) == 2 {
				kb, err := strconv.ParseFloat(f[0], 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no MemTotal")
}

// report is the benchmark's markdown: where it ran, then one table.
type report struct {
	machine string
	rows    []string
}

func (r *report) add(what string, v time.Duration, baseline string, b time.Duration) {
	r.row(what, v.Round(time.Millisecond).String(), baseline+" = "+b.Round(time.Millisecond).String(), fmt.Sprintf("%.2fx", ratio(v, b)))
}

func (r *report) row(cells ...string) {
	r.rows = append(r.rows, "| "+strings.Join(cells, " | ")+" |")
}

func (r *report) String() string {
	return "Measured " + r.machine + ".\n\n| measure | value | baseline (same run) | ratio |\n|---|---|---|---|\n" + strings.Join(r.rows, "\n") + "\n"
}

func percentile(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func waitWatch(t *testing.T, w watch.Interface, typ watch.EventType) {
	defer w.Stop()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			require.True(t, ok, "watch closed")
			if ev.Type == typ {
				return
			}
		case <-timeout:
			t.Fatal("timed out waiting for a watch event")
		}
	}
}

// benchNoopJob is the floor of any design that renders through a Job: run
// the job image doing nothing, then make the two writes a connection needs.
func (e *env) benchNoopJob(t *testing.T, runs int) []time.Duration {
	ns := e.targetNamespace(t)
	ctx := context.Background()
	cs := e.cluster.Clientset
	var out []time.Duration
	for i := range runs {
		name := fmt.Sprintf("noop%d", i)
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
				Containers: []corev1.Container{{Name: "noop", Image: "localhost/sc-extension/job:dev", ImagePullPolicy: corev1.PullIfNotPresent,
					Args: []string{"--help"},
					SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), RunAsUser: ptr.To[int64](65532),
						Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}}}}}}
		start := time.Now()
		_, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
		require.NoError(t, err)
		eventually(t, 2*time.Minute, "no-op job to finish", func(ctx context.Context) (bool, error) {
			j, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
			return err == nil && (j.Status.Succeeded > 0 || j.Status.Failed > 0), err
		})
		_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		require.NoError(t, err)
		out = append(out, time.Since(start))
	}
	return out
}

// bulkRun is one bulk of connections sent and Succeeded.
type bulkRun struct {
	wall time.Duration // first request sent -> all Succeeded
	// writesPer is the API server's count of writes to the product's
	// kinds of object per connection over the bulk; writes lists them.
	writesPer float64
	writes    string
	names     []string
	nss       []string
	remove    func() // deletes them and waits until they are gone; once
}

// benchBulk sends n creates spread over nsCount namespaces (every fourth
// with workload identity) and waits until all succeeded. Completion is read
// from the records through an informer, not from queries or polls.
func (e *env) benchBulk(t *testing.T, prefix string, n, nsCount int) *bulkRun {
	ctx := context.Background()
	b := &bulkRun{nss: make([]string, nsCount)}
	for i := range b.nss {
		b.nss[i] = e.targetNamespace(t)
	}
	specs := make([]connection.Spec, n)
	creds := make([]connection.Credentials, n)
	want := map[string]bool{}
	for i := range n {
		auth := catalog.AuthSecret
		if i%4 == 0 {
			auth = catalog.AuthWorkloadIdentity
		}
		specs[i], creds[i] = buildSpec(t, uniq(fmt.Sprintf("%s%d", prefix, i)), b.nss[i%nsCount], catalog.TargetStorageBlob, auth, blobID)
		b.names = append(b.names, specs[i].Name)
		want[specs[i].Name] = true
	}
	var once sync.Once
	b.remove = func() { once.Do(func() { e.deleteAll(t, b.names) }) }
	t.Cleanup(b.remove)
	done := countObjects(t, listWatch(e.cluster.Clientset, "ConfigMap", systemNS, record.Selector), &corev1.ConfigMap{}, recordIn(want, true))
	// Every new namespace gets kube-root-ca.crt from the controller
	// manager: not a write of ours to count.
	for _, ns := range b.nss {
		eventually(t, time.Minute, "kube-root-ca.crt in "+ns, func(ctx context.Context) (bool, error) {
			_, err := e.cluster.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			return err == nil, err
		})
	}
	writes := startWriteCount(t, e)
	start := time.Now()
	for i := range n {
		require.NoError(t, paced(ctx, func() error { _, err := e.cp.Create(ctx, specs[i], creds[i]); return err }))
	}
	done.await(t, atLeast(n), bulkTimeout(n), fmt.Sprintf("all %d connections to succeed", n))
	b.wall = time.Since(start)
	b.writesPer, b.writes = writes.done(t, e, n)
	done.Stop()
	return b
}

// paced sends as a control plane must past natsbus.RequestMaxPerCluster
// waiting requests: a publish the cluster's full queue refuses is sent
// again after a pause (doubling from 50 ms to 1 s) while the agent drains.
func paced(ctx context.Context, send func() error) error {
	backoff := natsbus.Backoff(50*time.Millisecond, time.Second)
	for attempt := 1; ; attempt++ {
		err := send()
		if !errors.Is(err, controlplane.ErrClusterBacklog) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (the queue stayed full): %w", ctx.Err(), err)
		case <-time.After(backoff(attempt)):
		}
	}
}

// bulkTimeout bounds a bulk's wait: generous, it only stops a stuck run.
func bulkTimeout(n int) time.Duration { return 20*time.Minute + time.Duration(n)*200*time.Millisecond }

// recordIn follows the records of the named connections; with succeeded,
// one counts once Succeeded, otherwise while it exists.
func recordIn(names map[string]bool, succeeded bool) func(any) (string, bool) {
	return func(o any) (string, bool) {
		cm, ok := o.(*corev1.ConfigMap)
		if !ok {
			return "", false
		}
		if !succeeded {
			name := cm.Annotations[connection.AnnotationConnectionName]
			if !names[name] {
				return "", false
			}
			return name, true
		}
		c, err := record.Decode(cm)
		if err != nil || !names[c.Spec.Name] {
			return "", false
		}
		return c.Spec.Name, c.Status.Phase == connection.PhaseSucceeded
	}
}

// deleteAll sends every delete at once and waits for the records to go: one
// Wait per connection would serialise a thousand sc-job round trips.
func (e *env) deleteAll(t *testing.T, names []string) {
	ctx, cancel := context.WithTimeout(context.Background(), bulkTimeout(len(names)))
	defer cancel()
	set := map[string]bool{}
	for _, name := range names {
		set[name] = true
	}
	left := countObjects(t, listWatch(e.cluster.Clientset, "ConfigMap", systemNS, record.Selector), &corev1.ConfigMap{}, recordIn(set, false))
	defer left.Stop()
	for _, name := range names {
		if err := paced(ctx, func() error { _, err := e.cp.Delete(ctx, name, true); return err }); err != nil {
			t.Errorf("cleanup: delete %s: %v", name, err)
		}
	}
	left.await(t, none, bulkTimeout(len(names)), fmt.Sprintf("%d bulk connections to be deleted", len(names)))
}

// benchPlainClient writes what the product writes for the same n
// connections (record ConfigMap, credential Secret, rendered Secret, shared
// ServiceAccounts) with a plain sequential client-go loop.
func (e *env) benchPlainClient(t *testing.T, n, nsCount int) time.Duration {
	ctx := context.Background()
	cs := e.cluster.Clientset
	nss := make([]string, nsCount)
	for i := range nss {
		nss[i] = e.targetNamespace(t)
	}
	sys := e.targetNamespace(t)
	start := time.Now()
	for i := range n {
		ns := nss[i%nsCount]
		name := "plain" + strconv.Itoa(i)
		_, err := cs.CoreV1().ConfigMaps(sys).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"spec": "{}"}}, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = cs.CoreV1().Secrets(sys).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{})
		require.NoError(t, err)
		if i%4 == 0 && i < 4*nsCount {
			_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			require.NoError(t, err)
		}
	}
	return time.Since(start)
}

// watchJobRuns counts distinct sc-job runs (Job UIDs) until the returned
// func is called.
func (e *env) watchJobRuns(t *testing.T) func() int {
	ctx, cancel := context.WithCancel(context.Background())
	w, err := e.cluster.Clientset.BatchV1().Jobs(systemNS).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", jobName).String()})
	require.NoError(t, err)
	uids := map[string]bool{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if j, ok := ev.Object.(*batchv1.Job); ok && ev.Type == watch.Added {
				mu.Lock()
				uids[string(j.UID)] = true
				mu.Unlock()
			}
		}
	}()
	return func() int {
		cancel()
		w.Stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return len(uids)
	}
}

// agentRSS reads the agent's resident memory from its own Prometheus
// metrics (process collector), through the API server's service proxy.
func (e *env) agentRSS(t *testing.T) float64 {
	ctx := context.Background()
	b, err := e.cluster.Clientset.CoreV1().Services(systemNS).ProxyGet("http", "sc-agent", "http", "/metrics", nil).DoRaw(ctx)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "process_resident_memory_bytes ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "process_resident_memory_bytes")), 64)
			require.NoError(t, err)
			return v
		}
	}
	t.Fatal("agent /metrics has no process_resident_memory_bytes")
	return 0
}

func TestBenchScaleKnob(t *testing.T) {
	for v, want := range map[string]int{"": 0, "0": 0, "10000": 10000} {
		n, err := benchScale(v)
		require.NoError(t, err, v)
		require.Equal(t, want, n, v)
	}
	for _, v := range []string{"-1", "10k"} {
		_, err := benchScale(v)
		require.Error(t, err, v)
	}
	m, err := parseMemTotal("MemTotal:        8048576 kB\nMemFree: 1 kB\n")
	require.NoError(t, err)
	require.Equal(t, 8048576.0*1024, m)
}
