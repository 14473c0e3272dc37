//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// TestAgentKilledWithRequestsInFlight sends a burst of 500 creates and
// kills the agent three times while its intake applies them. Each kill
// lands mid-apply by construction, never by a delay or a race with the
// log: the test's admission webhook (createHold) lets perPod record
// creates through per agent and holds the next, so the pod is killed with
// a create in flight, once its log shows it stored its perPod. The proof
// is read from the logs afterwards: the killed pod stored some of the
// burst (and not all of it) and the pods after it stored more. Then the
// usual accounting: every request one final status, applied once
// (generation 1, its request id), one rendered Secret each.
func TestAgentKilledWithRequestsInFlight(t *testing.T) {
	e := product(t)
	status := e.followStatus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cs := e.cluster.Clientset
	ns := e.targetNamespace(t)
	pub := e.newPublisher(ctx, t, ns)

	const (
		n      = 500
		kills  = 3
		perPod = 40
		prefix = "inflight"
	)
	isBurst := func(name string) bool { return strings.HasPrefix(name, prefix) && strings.HasSuffix(name, runID) }

	first := e.leaderPod(ctx, t, nil)
	runs := []*intakeLog{e.followIntake(ctx, t, first, isBurst)}
	hold := e.holdCreates(t, "configmaps", systemNS, connection.ConfigMapName(prefix), perPod)
	pub.send(ctx, t, prefix, 0, n)
	t.Logf("sent %d creates", n)

	killed := map[string]bool{}
	atKill := make([]int, kills)
	for k := range kills {
		run := runs[k]
		_, held := hold.awaitHeld(t, 3*time.Minute)
		eventually(t, 3*time.Minute, fmt.Sprintf("agent %s to log the %d of the burst let through", run.pod, perPod), func(context.Context) (bool, error) {
			if c := run.count(); c < perPod {
				return false, fmt.Errorf("%d stored", c)
			}
			return true, nil
		})
		atKill[k] = run.count()
		require.NoError(t, cs.CoreV1().Pods(systemNS).Delete(ctx, run.pod, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
		killed[run.pod] = true
		run.awaitEnd(t)
		t.Logf("kill %d: %s killed with %d of the burst stored and %d creates held (%d by the end of its log)", k+1, run.pod, atKill[k], held, run.count())
		if k < kills-1 {
			hold.allowMore(t, perPod)
		} else {
			hold.open()
		}
		runs = append(runs, e.followIntake(ctx, t, e.leaderPod(ctx, t, killed), isBurst))
	}

	status.awaitFinals(t, 8*time.Minute, connection.PhaseSucceeded, pub.requests)
	e.awaitConverged(t, 2*time.Minute, pub.requests)
	e.assertRenderedSecrets(t, ns, pub.requests)

	// The proof, from the logs: each killed pod stored part of the burst,
	// and the pods after it stored the part it left; no request was
	// stored by two pods.
	last := runs[kills]
	last.stop()
	byPod := map[string]string{}
	redelivered := 0
	for i, run := range runs {
		acc, dup, redel := run.snapshot()
		redelivered += redel
		t.Logf("agent %s: stored %d of the burst, found %d already stored, %d attempts on redeliveries", run.pod, len(acc), len(dup), redel)
		for id := range acc {
			if other, ok := byPod[id]; ok {
				t.Errorf("request %s stored by %s and again by %s", id, other, run.pod)
			}
			byPod[id] = run.pod
		}
		if i == kills {
			break
		}
		later := 0
		for _, r := range runs[i+1:] {
			a, _, _ := r.snapshot()
			later += len(a)
		}
		assert.GreaterOrEqual(t, len(acc), perPod, "kill %d landed after %s stored part of the burst", i+1, run.pod)
		assert.Less(t, len(acc), n, "kill %d landed before %s stored all of the burst", i+1, run.pod)
		assert.Positive(t, later, "kill %d left burst requests for the agents after %s to store", i+1, run.pod)
	}
	t.Logf("%d of %d requests stored with a log line of the storing pod; %d attempts on redelivered requests", len(byPod), n, redelivered)
}

// leaderPod waits until an agent pod not in exclude holds the Lease and
// runs, and returns its name.
func (e *env) leaderPod(ctx context.Context, t *testing.T, exclude map[string]bool) string {
	t.Helper()
	cs := e.cluster.Clientset
	var pod string
	eventually(t, 2*time.Minute, "a new agent leader", func(ctx context.Context) (bool, error) {
		l, err := cs.CoordinationV1().Leases(systemNS).Get(ctx, agentLease, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if l.Spec.HolderIdentity == nil || exclude[*l.Spec.HolderIdentity] {
			return false, fmt.Errorf("lease held by %v", l.Spec.HolderIdentity)
		}
		p, err := cs.CoreV1().Pods(systemNS).Get(ctx, *l.Spec.HolderIdentity, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Status.Phase != corev1.PodRunning {
			return false, fmt.Errorf("leader %s is %s", p.Name, p.Status.Phase)
		}
		pod = p.Name
		return true, nil
	})
	return pod
}

// intakeLog follows one agent pod's log from its start and keeps what its
// intake said about the burst's requests (one JSON line per attempt:
// requestId, connection, delivered, outcome).
type intakeLog struct {
	pod    string
	cancel context.CancelFunc
	done   chan struct{}
	text   strings.Builder // the whole log, printed if the test fails

	mu          sync.Mutex
	messages    map[string]bool // every log message seen
	accepted    map[string]bool // request ids this pod stored
	duplicates  map[string]bool // request ids this pod found already stored
	redelivered int             // attempts at deliveries after the first
}

func (e *env) followIntake(ctx context.Context, t *testing.T, pod string, isBurst func(string) bool) *intakeLog {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	l := &intakeLog{pod: pod, cancel: cancel, done: make(chan struct{}), accepted: map[string]bool{}, duplicates: map[string]bool{}, messages: map[string]bool{}}
	var stream io.ReadCloser
	// The stream lives on ctx, not on the poll's context, which ends with the poll.
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		var err error
		stream, err = e.cluster.Clientset.CoreV1().Pods(systemNS).GetLogs(pod, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
		return err == nil, nil
	})
	require.NoError(t, err, "following the log of %s", pod)
	go func() {
		defer close(l.done)
		defer stream.Close()
		sc := bufio.NewScanner(stream)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			l.add(sc.Bytes(), isBurst)
		}
	}()
	t.Cleanup(func() {
		l.stop()
		if t.Failed() {
			t.Logf("log of agent %s:\n%s", pod, l.text.String())
		}
	})
	return l
}

func (l *intakeLog) add(line []byte, isBurst func(string) bool) {
	var rec struct {
		RequestID  string `json:"requestId"`
		Connection string `json:"connection"`
		Delivered  uint64 `json:"delivered"`
		Outcome    string `json:"outcome"`
		Message    string `json:"message"`
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text.Write(line)
	l.text.WriteByte('\n')
	if json.Unmarshal(line, &rec) != nil {
		return
	}
	l.messages[rec.Message] = true
	if !isBurst(rec.Connection) {
		return
	}
	switch rec.Outcome {
	case "accepted":
		l.accepted[rec.RequestID] = true
	case "duplicate":
		l.duplicates[rec.RequestID] = true
	}
	if rec.Outcome != "" && rec.Delivered > 1 {
		l.redelivered++
	}
}

// saw reports whether the pod logged message.
func (l *intakeLog) saw(message string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.messages[message]
}

func (l *intakeLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

func (l *intakeLog) snapshot() (accepted, duplicates map[string]bool, redelivered int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted, l.duplicates, l.redelivered
}

// awaitEnd waits until the killed pod's log ends, so everything it wrote
// before dying is counted.
func (l *intakeLog) awaitEnd(t *testing.T) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(time.Minute):
		t.Fatalf("the log of killed agent %s did not end within a minute", l.pod)
	}
}

func (l *intakeLog) stop() {
	l.cancel()
	<-l.done
}
