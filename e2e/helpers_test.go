//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/e2e/testbed/helmrelease"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// repoRoot finds the module root so the suite works from any working directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "go.mod not found above the test directory")
		dir = parent
	}
}

// helmBin is the real helm CLI: $HELM, else the one `make tools` builds into bin/.
func helmBin(t testing.TB) string {
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	p := filepath.Join(repoRoot(t), "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm CLI not found at %s: run make tools", p)
	}
	return p
}

// helmRunner runs helm against the cluster, for helmrelease.
func helmRunner(kubeconfig, bin string) helmrelease.Helm {
	return func(_ context.Context, args ...string) (string, error) { return tryHelm(kubeconfig, bin, args...) }
}

// runHelm runs the helm CLI and returns its combined output; it fails the test on error.
func runHelm(t testing.TB, kubeconfig string, args ...string) string {
	t.Helper()
	out, err := tryHelm(kubeconfig, helmBin(t), args...)
	require.NoError(t, err, "helm %s:\n%s", strings.Join(args, " "), out)
	return out
}

func tryHelm(kubeconfig, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HELM_CACHE_HOME="+os.TempDir()+"/sc-e2e-helm-cache",
		"HELM_CONFIG_HOME="+os.TempDir()+"/sc-e2e-helm-config", "HELM_DATA_HOME="+os.TempDir()+"/sc-e2e-helm-data")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// eventually polls cond against the API until it holds; the poll is the
// synchronisation, so no test sleeps.
func eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil {
			last = err
			return false, nil
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, last)
	}
}

func getSecret(ctx context.Context, cs kubernetes.Interface, ns, name string) (*corev1.Secret, error) {
	return cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}

// jobGone reports whether the Job no longer exists.
func jobGone(ctx context.Context, cs kubernetes.Interface, ns, name string) (bool, error) {
	_, err := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

func jobFailed(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// jobLogs returns what `kubectl logs job/NAME` shows: the log of the Job's newest pod.
func jobLogs(ctx context.Context, cs kubernetes.Interface, ns, job string) (string, error) {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job})
	if err != nil {
		return "", err
	}
	if len(pods.Items) == 0 {
		return "", fmt.Errorf("no pod for job %s/%s", ns, job)
	}
	newest := pods.Items[0]
	for _, p := range pods.Items[1:] {
		if p.CreationTimestamp.After(newest.CreationTimestamp.Time) {
			newest = p
		}
	}
	b, err := cs.CoreV1().Pods(ns).GetLogs(newest.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	return string(b), err
}

// statusLog is what the control plane hears: every status event of the
// cluster from the moment it was started, read through its own ordered
// consumer (which resumes after a NATS server restart).
type statusLog struct {
	mu     sync.Mutex
	events []protocol.StatusEvent
}

// followStatus starts a statusLog before the test sends anything, so no
// event of the test's requests can be missed.
func (e *env) followStatus(t *testing.T) *statusLog {
	t.Helper()
	admin := e.nats.Admin()
	nc, err := nats.Connect(e.nats.ClientURL(), nats.UserInfo(admin.User, admin.Password), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.Name("e2e-status-log"))
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := js.OrderedConsumer(ctx, protocol.StatusStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{protocol.StatusSubjectAll(clusterID)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	require.NoError(t, err)
	it, err := cons.Messages()
	require.NoError(t, err)
	l := &statusLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msg, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err != nil {
				continue // missed heartbeats while the server restarts; the ordered consumer resumes
			}
			var ev protocol.StatusEvent
			if protocol.Decode(msg.Data(), protocol.KindStatus, &ev) != nil {
				continue
			}
			l.mu.Lock()
			l.events = append(l.events, ev)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		it.Stop()
		<-done
		cancel()
		nc.Close()
		if t.Failed() {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, ev := range l.events {
				t.Logf("status seen: %s req=%s gen=%d %s/%s %s", ev.Connection, ev.RequestID, ev.Generation, ev.Phase, ev.Reason, ev.Message)
			}
		}
	})
	return l
}

// of returns the events seen for one connection, in stream order.
func (l *statusLog) of(name string) []protocol.StatusEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []protocol.StatusEvent
	for _, ev := range l.events {
		if ev.Connection == name {
			out = append(out, ev)
		}
	}
	return out
}

// finals returns the final (Succeeded, Failed, Deleted) events of a request.
func (l *statusLog) finals(requestID string) []protocol.StatusEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []protocol.StatusEvent
	for _, ev := range l.events {
		if ev.RequestID == requestID && finalPhase(ev.Phase) {
			out = append(out, ev)
		}
	}
	return out
}

func finalPhase(p connection.Phase) bool {
	return p == connection.PhaseSucceeded || p == connection.PhaseFailed || p == connection.PhaseDeleted
}

// awaitFinals waits until every request (connection name -> request id)
// has a final status the control plane saw, then checks it saw exactly one
// per request, of phase want.
func (l *statusLog) awaitFinals(t *testing.T, timeout time.Duration, want connection.Phase, requests map[string]string) {
	t.Helper()
	l.awaitHeard(t, timeout, requests)
	for name, id := range requests {
		finals := l.finals(id)
		if assert.Len(t, finals, 1, "%s (request %s): exactly one final status", name, id) {
			assert.Equal(t, want, finals[0].Phase, "%s: %s %s", name, finals[0].Reason, finals[0].Message)
		}
	}
}

// awaitHeard waits until the control plane heard a final status of every
// request (any key -> request id).
func (l *statusLog) awaitHeard(t *testing.T, timeout time.Duration, requests map[string]string) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("a final status for each of %d requests", len(requests)), func(context.Context) (bool, error) {
		if n := unfinished(l, requests); n > 0 {
			return false, fmt.Errorf("%d requests without a final status", n)
		}
		return true, nil
	})
}

// recordsOf decodes the connection records whose names are in names.
func (e *env) recordsOf(ctx context.Context, names map[string]string) (map[string]connection.Connection, error) {
	cms, err := e.cluster.Clientset.CoreV1().ConfigMaps(systemNS).List(ctx, metav1.ListOptions{LabelSelector: record.Selector})
	if err != nil {
		return nil, err
	}
	out := map[string]connection.Connection{}
	for i := range cms.Items {
		c, err := record.Decode(&cms.Items[i])
		if err != nil {
			continue
		}
		if _, ok := names[c.Spec.Name]; ok {
			out[c.Spec.Name] = c
		}
	}
	return out, nil
}

// awaitConverged waits until every named connection's record is Succeeded
// at generation 1 with its own request id: each request applied once.
func (e *env) awaitConverged(t *testing.T, timeout time.Duration, requests map[string]string) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%d connections to be Succeeded", len(requests)), func(ctx context.Context) (bool, error) {
		recs, err := e.recordsOf(ctx, requests)
		if err != nil {
			return false, err
		}
		done := 0
		for _, c := range recs {
			if c.Status.Phase == connection.PhaseSucceeded {
				done++
			}
		}
		if done < len(requests) {
			return false, fmt.Errorf("%d of %d Succeeded", done, len(requests))
		}
		return true, nil
	})
	recs, err := e.recordsOf(context.Background(), requests)
	require.NoError(t, err)
	for name, id := range requests {
		assert.EqualValues(t, 1, recs[name].Generation, "%s applied exactly once", name)
		assert.Equal(t, id, recs[name].Status.LastRequestID, name)
	}
}

// assertRenderedSecrets checks that namespace ns holds exactly one managed
// Secret per named connection and no other.
func (e *env) assertRenderedSecrets(t *testing.T, ns string, names map[string]string) {
	t.Helper()
	secs, err := e.cluster.Clientset.CoreV1().Secrets(ns).List(context.Background(),
		metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=sc-extension"})
	require.NoError(t, err)
	got := map[string]int{}
	for _, s := range secs.Items {
		got[s.Name]++
	}
	want := map[string]int{}
	for name := range names {
		want[connection.SecretName(connection.ObjectID(name))] = 1
	}
	assert.Equal(t, want, got, "one rendered Secret per connection in %s", ns)
}
