//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
)

// TestBenchReport is `make bench`: it measures the product on the local
// cluster and reports each figure as a ratio against a baseline measured in
// the same run. It asserts nothing about speed; it runs only when
// SC_BENCH_OUT names the report file.
func TestBenchReport(t *testing.T) {
	out := os.Getenv("SC_BENCH_OUT")
	if out == "" {
		t.Skip("set SC_BENCH_OUT (make bench) to run the benchmark report")
	}
	e := product(t)
	var rep report

	lat := e.benchCreateToSecret(t, 20)
	base := e.benchNoopJob(t, 5)
	p50, p95 := percentile(lat, 50), percentile(lat, 95)
	b50 := percentile(base, 50)
	rep.add("create -> Secret ready, p50 (20 runs)", p50, "no-op Job + 2 writes, p50", b50)
	rep.add("create -> Secret ready, p95 (20 runs)", p95, "no-op Job + 2 writes, p50", b50)

	idle := e.agentRSS(t)
	stopCount := e.watchJobRuns(t)
	wall := e.benchBulk(t, 1000, 50)
	runs := stopCount()
	after := e.agentRSS(t)
	baseWall := e.benchPlainClient(t, 1000, 50)
	rep.add("1000 connections / 50 namespaces, wall", wall, "plain client-go loop, same objects", baseWall)
	rep.rows = append(rep.rows, fmt.Sprintf("| sc-job runs for the 1000 | %d | | |", runs))
	rep.rows = append(rep.rows, fmt.Sprintf("| agent RSS idle / after 1000 | %.1f MiB / %.1f MiB | | %.2fx |", idle/1048576, after/1048576, after/idle))

	text := rep.String()
	fmt.Println(text)
	require.NoError(t, os.MkdirAll(filepath.Dir(out), 0o755))
	require.NoError(t, os.WriteFile(out, []byte(text), 0o644))
}

type report struct{ rows []string }

func (r *report) add(what string, v time.Duration, baseline string, b time.Duration) {
	r.rows = append(r.rows, fmt.Sprintf("| %s | %s | %s = %s | %.2fx |", what, v.Round(time.Millisecond), baseline, b.Round(time.Millisecond), float64(v)/float64(b)))
}

func (r *report) String() string {
	return "| measure | value | baseline (same run) | ratio |\n|---|---|---|---|\n" + strings.Join(r.rows, "\n") + "\n"
}

func percentile(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// benchCreateToSecret times from publishing a create to the rendered Secret
// appearing (a watch event, not a poll).
func (e *env) benchCreateToSecret(t *testing.T, runs int) []time.Duration {
	ns := e.targetNamespace(t)
	ctx := context.Background()
	var out []time.Duration
	for i := range runs {
		name := uniq(fmt.Sprintf("lat%d", i))
		spec, creds := buildSpec(t, name, ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
		w, err := e.cluster.Clientset.CoreV1().Secrets(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", connection.SecretName(name)).String()})
		require.NoError(t, err)
		start := time.Now()
		_, err = e.cp.Create(ctx, spec, creds)
		require.NoError(t, err)
		e.deleteAtCleanup(t, spec.Name)
		waitWatch(t, w, watch.Added)
		out = append(out, time.Since(start))
		// let the Job finish and go, so every run starts from the same state
		eventually(t, time.Minute, "sc-job gone", func(ctx context.Context) (bool, error) { return jobGone(ctx, e.cluster.Clientset, systemNS, jobName) })
	}
	return out
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

// benchBulk sends n creates spread over nsCount namespaces (every fourth
// with workload identity) and waits until all succeeded.
func (e *env) benchBulk(t *testing.T, n, nsCount int) time.Duration {
	ctx := context.Background()
	nss := make([]string, nsCount)
	for i := range nss {
		nss[i] = e.targetNamespace(t)
	}
	start := time.Now()
	var names []string
	for i := range n {
		auth := catalog.AuthSecret
		if i%4 == 0 {
			auth = catalog.AuthWorkloadIdentity
		}
		spec, creds := buildSpec(t, uniq(fmt.Sprintf("bulk%d", i)), nss[i%nsCount], catalog.TargetStorageBlob, auth, blobID)
		_, err := e.cp.Create(ctx, spec, creds)
		require.NoError(t, err)
		names = append(names, spec.Name)
	}
	t.Cleanup(func() { e.deleteAll(t, names) })
	// Completion is read from the records themselves: one list query
	// reply is bounded (protocol.MaxMessageBytes) below 1000 connections.
	eventually(t, 20*time.Minute, "all bulk connections to succeed", func(ctx context.Context) (bool, error) {
		cms, err := e.cluster.Clientset.CoreV1().ConfigMaps(systemNS).List(ctx, metav1.ListOptions{LabelSelector: record.Selector})
		if err != nil {
			return false, err
		}
		done := 0
		for i := range cms.Items {
			c, err := record.Decode(&cms.Items[i])
			if err == nil && strings.HasPrefix(c.Spec.Name, "bulk") && strings.HasSuffix(c.Spec.Name, runID) && c.Status.Phase == connection.PhaseSucceeded {
				done++
			}
		}
		return done == n, nil
	})
	return time.Since(start)
}

// deleteAll sends every delete at once and waits for the records to go: one
// Wait per connection would serialise a thousand sc-job round trips.
func (e *env) deleteAll(t *testing.T, names []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	for _, name := range names {
		if _, err := e.cp.Delete(ctx, name, true); err != nil {
			t.Errorf("cleanup: delete %s: %v", name, err)
		}
	}
	eventually(t, 20*time.Minute, "bulk connections to be deleted", func(ctx context.Context) (bool, error) {
		cms, err := e.cluster.Clientset.CoreV1().ConfigMaps(systemNS).List(ctx, metav1.ListOptions{LabelSelector: record.Selector})
		if err != nil {
			return false, err
		}
		for i := range cms.Items {
			if strings.HasPrefix(cms.Items[i].Annotations[connection.AnnotationConnectionName], "bulk") {
				return false, nil
			}
		}
		return true, nil
	})
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
