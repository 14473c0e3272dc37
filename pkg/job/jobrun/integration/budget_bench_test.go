//go:build integration

package jobrun_integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/job/jobrun"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// sc-job's defaults (job/main.go): --qps 500, --burst 1000, --workers 16.
const (
	benchQPS     = 500
	benchBurst   = 1000
	benchWorkers = 16
	benchSettled = 500
)

// BenchmarkCreateDuringReRender times a connection created while a Helm
// upgrade's re-render (sc-job --render-all over 500 rendered, unchanged
// connections, and those created by the iterations before) runs:
// store.Apply -> the record says Succeeded, one create at a time for as
// long as the re-render lasts; the re-render's rate is reported per
// connection, since later iterations re-render more. Due work has sc-job's
// default budget (--qps 500, --burst 1000); "shared" is sc-job before the
// re-render had a budget of its own (one token bucket for everything),
// "rerender-N" gives it one of N/s (--rerender-qps); "idle" is the same
// create with a warm run and no re-render. Reported, never asserted: the
// API server shares its 2 cores with the benchmark and whatever else runs.
//
//	go test -tags integration -run '^$' -bench CreateDuringReRender -benchtime 3x ./pkg/job/jobrun/integration/
func BenchmarkCreateDuringReRender(b *testing.B) {
	e := setup(b)
	for i := range benchSettled {
		e.apply(e.secretChange(fmt.Sprintf("old%04d", i)))
	}
	sum, err := e.runner(func(c *jobrun.Config) { c.Workers = benchWorkers; c.JobName = "" }).Run(e.ctx)
	require.NoError(b, err)
	require.Equal(b, benchSettled, sum.Rendered)
	w := watchSucceeded(b, e)

	b.Run("idle", func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			lat = append(lat, e.idleCreates(b, w, 10)...)
		}
		report(b, lat, 0, 0)
	})
	for _, split := range []struct {
		name  string
		qps   float32 // the re-render's; 0 shares due work's
		burst int
	}{{"shared", 0, 0}, {"rerender-500", 500, 1000}, {"rerender-300", 300, 300}, {"rerender-200", 200, 200}} {
		b.Run(split.name, func(b *testing.B) {
			var (
				lat  []time.Duration
				runs time.Duration
				n    int
			)
			for b.Loop() {
				l, k, d := e.createsDuringReRender(b, w, limiter(split.qps, split.burst))
				lat, n, runs = append(lat, l...), n+k, runs+d
			}
			report(b, lat, n, runs)
		})
	}
}

// limiter is sc-job's: due work's budget at --qps/--burst and the
// re-render's at qps/burst, or one for both (qps 0).
func limiter(qps float32, burst int) func() flowcontrol.RateLimiter {
	return func() flowcontrol.RateLimiter {
		due := flowcontrol.NewTokenBucketRateLimiter(benchQPS, benchBurst)
		if qps == 0 {
			return jobrun.NewLimiter(due, nil)
		}
		return jobrun.NewLimiter(due, flowcontrol.NewTokenBucketRateLimiter(qps, burst))
	}
}

// takenStore counts the re-renders a run took (its fresh read starts
// each): every connection but those created during the run.
type takenStore struct {
	*store.Store
	mu    sync.Mutex
	fresh map[string]bool
	taken int
}

func (s *takenStore) Snapshot(ctx context.Context, id string) (store.Snapshot, error) {
	s.mu.Lock()
	if !s.fresh[id] {
		s.taken++
	}
	s.mu.Unlock()
	return s.Store.Snapshot(ctx, id)
}

func (s *takenStore) rerendered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taken
}

func (s *takenStore) created(name string) {
	s.mu.Lock()
	s.fresh[connection.ObjectID(name)] = true
	s.mu.Unlock()
}

// createsDuringReRender runs one re-render and creates connections one
// after another while it lasts; it returns the latency of each that
// succeeded while the re-render still had connections to take, how many
// it re-rendered (the connections timed before join the next one's) and
// how long it took to take them all.
func (e *env) createsDuringReRender(b *testing.B, w *succeeded, limiter func() flowcontrol.RateLimiter) ([]time.Duration, int, time.Duration) {
	all, err := e.store.List(e.ctx)
	require.NoError(b, err)
	run := kubetest.New(b, func(c *rest.Config) { c.RateLimiter = limiter() })
	st := &takenStore{Store: store.New(run.Clientset, e.sys), fresh: map[string]bool{}}
	// It lingers so that a create made as the re-render ends is still taken.
	r := e.runner(func(c *jobrun.Config) {
		c.Client, c.Dynamic, c.Store, c.RenderAll, c.Workers, c.JobName, c.Linger = run.Clientset, run.Dynamic, st, true, benchWorkers, "", 2*time.Second
	})
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := r.Run(e.ctx)
		done <- err
	}()
	var lat []time.Duration
	// The re-render has begun once every worker took a connection.
	for st.rerendered() < benchWorkers {
		select {
		case err := <-done:
			require.NoError(b, err)
			b.Fatal("the re-render ended before it began")
		case <-time.After(time.Millisecond):
		}
	}
	for st.rerendered() < len(all) {
		d := e.timedCreate(b, w, st.created)
		if st.rerendered() < len(all) {
			lat = append(lat, d)
		}
	}
	took := time.Since(start)
	require.NoError(b, <-done)
	return lat, len(all), took
}

// idleCreates times n creates taken by a warm, lingering run.
func (e *env) idleCreates(b *testing.B, w *succeeded, n int) []time.Duration {
	run := kubetest.New(b, func(c *rest.Config) { c.RateLimiter = limiter(200, 200)() })
	ctx, cancel := context.WithCancel(e.ctx)
	r := e.runner(func(c *jobrun.Config) {
		c.Client, c.Dynamic, c.Store, c.Workers, c.JobName, c.Linger = run.Clientset, run.Dynamic, nil, benchWorkers, "", time.Hour
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = r.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	e.timedCreate(b, w, nil) // warms the run up: it watches the records
	lat := make([]time.Duration, 0, n)
	for range n {
		lat = append(lat, e.timedCreate(b, w, nil))
	}
	return lat
}

// timedCreate creates a connection and returns how long it took to
// reach Succeeded; named, if not nil, is told its name first.
func (e *env) timedCreate(b *testing.B, w *succeeded, named func(string)) time.Duration {
	e.mu.Lock()
	e.seq++
	name := fmt.Sprintf("new%d", e.seq)
	e.mu.Unlock()
	if named != nil {
		named(name)
	}
	ch := w.expect(name)
	start := time.Now()
	e.apply(e.secretChange(name))
	select {
	case <-ch:
		return time.Since(start)
	case <-time.After(time.Minute):
		b.Fatalf("%s never succeeded", name)
		return 0
	}
}

// succeeded tells when a record first says Succeeded, from a watch on
// the records.
type succeeded struct {
	mu   sync.Mutex
	want map[string]chan struct{}
}

func watchSucceeded(b *testing.B, e *env) *succeeded {
	wt, err := e.client.CoreV1().ConfigMaps(e.sys).Watch(e.ctx, metav1.ListOptions{LabelSelector: record.Selector})
	require.NoError(b, err)
	b.Cleanup(wt.Stop)
	s := &succeeded{want: map[string]chan struct{}{}}
	go func() {
		for ev := range wt.ResultChan() {
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok {
				continue
			}
			c, err := record.Decode(cm)
			if err != nil || c.Status.Phase != connection.PhaseSucceeded {
				continue
			}
			s.mu.Lock()
			if ch, ok := s.want[c.Spec.Name]; ok {
				close(ch)
				delete(s.want, c.Spec.Name)
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *succeeded) expect(name string) <-chan struct{} {
	ch := make(chan struct{})
	s.mu.Lock()
	s.want[name] = ch
	s.mu.Unlock()
	return ch
}

func report(b *testing.B, lat []time.Duration, rerendered int, took time.Duration) {
	b.StopTimer()
	if len(lat) == 0 {
		b.Log("no create finished while the re-render ran")
		return
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*9/10]), "p90-ms")
	b.ReportMetric(float64(len(lat)), "creates")
	rate := ""
	if took > 0 {
		b.ReportMetric(float64(rerendered)/took.Seconds(), "rerendered/s")
		rate = fmt.Sprintf("; re-render %d connections in %s (%.0f/s)", rerendered, took.Round(time.Millisecond), float64(rerendered)/took.Seconds())
	}
	b.Logf("%d creates: p50 %s, p90 %s, max %s%s", len(lat), lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)-1], rate)
}
