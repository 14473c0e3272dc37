package launcher

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	connrecord "github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

const ns = records.Namespace

var epoch = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func testConfig() Config {
	return Config{
		Namespace:             ns,
		Image:                 "localhost/sc-extension/job:dev",
		ImagePullPolicy:       corev1.PullNever,
		ServiceAccount:        "sc-job",
		ExtraArgs:             []string{"--log-level=info"},
		NodeSelector:          map[string]string{"kubernetes.io/os": "linux"},
		Tolerations:           []corev1.Toleration{{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists}},
		BackoffLimit:          1,
		ActiveDeadlineSeconds: 600,
		KeepFailedFor:         15 * time.Minute,
	}
}

// recordCM is the record of connection id, as pkg/kube/store writes it.
func recordCM(t testing.TB, id string, phase connection.Phase, generation int64) *corev1.ConfigMap {
	return records.ConfigMap(t, records.Connection(id, phase, generation))
}

// waitingCM is the record of connection id that sc-job left in phase with
// reason, holding it until retryAfter after attempts runs of generation 1.
func waitingCM(t testing.TB, id string, phase connection.Phase, reason string, attempts int, retryAfter time.Time) *corev1.ConfigMap {
	c := records.Connection(id, phase, 1)
	c.Status.Reason, c.Status.Attempts, c.Status.RetryAfter = reason, attempts, &retryAfter
	c.Status.LastFailure = &connection.Failure{Since: epoch.Add(-time.Hour), Time: epoch.Add(-time.Minute),
		Phase: phase, Reason: reason, Run: "sc-job-abcde", Generation: 1}
	return records.ConfigMap(t, c)
}

// namespaceObj is a Namespace as the metadata-only cache holds it.
func namespaceObj(name, uid string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid), ResourceVersion: "1"}}
}

// credentialSecret is what pkg/kube/store keeps next to a record; the launcher
// must never copy anything from it into a Job.
func credentialSecret(id, value string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: connection.CredentialSecretName(id),
			Labels: map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: id}},
		Data: map[string][]byte{"AZURE_STORAGEBLOB_CONNECTIONSTRING": []byte(value)},
	}
}

func credValue() string { return fmt.Sprintf("cred-VALUE-%d", rand.Uint64()) }

// ourJob is a Job the launcher created for the given work.
func ourJob(items ...workItem) *batchv1.Job {
	j := jobFor(testConfig().WithDefaults(), newWork(items))
	j.UID = "uid-job-1"
	j.ResourceVersion = "5"
	return j
}

func withCondition(j *batchv1.Job, t batchv1.JobConditionType, reason string, at time.Time) *batchv1.Job {
	j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{
		Type: t, Status: corev1.ConditionTrue, Reason: reason, LastTransitionTime: metav1.NewTime(at),
	})
	return j
}

func item(id string, gen int64) workItem { return workItem{id: id, generation: gen} }

type fixture struct {
	t        testing.TB
	client   *fake.Clientset
	factory  informers.SharedInformerFactory
	clock    *clocktesting.FakeClock
	recorder *record.FakeRecorder
	metrics  *health.Metrics
	logs     *bytes.Buffer
	c        *Controller
}

// newFixture builds a controller whose caches hold objs, sample-controller
// style: the informers are not started, the objects go straight into their
// indexers, so the fake client records only the controller's own actions.
func newFixture(t testing.TB, objs ...runtime.Object) *fixture {
	t.Helper()
	f := &fixture{
		t:        t,
		client:   fake.NewClientset(objs...),
		clock:    clocktesting.NewFakeClock(epoch),
		recorder: record.NewFakeRecorder(100),
		metrics:  health.NewMetrics(),
		logs:     &bytes.Buffer{},
	}
	f.factory = informers.NewSharedInformerFactory(f.client, 0)
	c, err := New(Deps{
		Client: f.client, Records: f.factory.Core().V1().ConfigMaps(), Jobs: f.factory.Batch().V1().Jobs(),
		Namespaces: f.factory.Core().V1().Namespaces(), Waker: store.New(f.client, ns),
		Recorder: f.recorder, Clock: f.clock, Metrics: f.metrics,
		Log: zerolog.New(f.logs).Level(zerolog.DebugLevel),
	}, testConfig())
	require.NoError(t, err)
	for _, o := range objs {
		switch o.(type) {
		case *corev1.ConfigMap, *batchv1.Job:
			records.Index(t, f.factory, o)
		case *corev1.Namespace:
			require.NoError(t, f.factory.Core().V1().Namespaces().Informer().GetIndexer().Add(o))
		}
	}
	f.c = c
	t.Cleanup(c.worker.Queue().ShutDown)
	t.Cleanup(c.wake.worker.Queue().ShutDown)
	return f
}

func (f *fixture) actions() []string { return fakeactions.Of(f.client) }

func (f *fixture) events() []string { return fakeactions.Events(f.recorder) }

// process runs one work item through the queue, as a worker would.
func (f *fixture) process() {
	f.t.Helper()
	f.c.worker.Add(f.c.key)
	require.True(f.t, f.c.worker.ProcessNextWorkItem(context.Background()))
}

// createdJob is the Job object of the create action, failing if there is none.
func (f *fixture) createdJob() (*batchv1.Job, core.CreateActionImpl) {
	f.t.Helper()
	for _, a := range f.client.Actions() {
		if c, ok := a.(core.CreateActionImpl); ok && a.GetResource().Resource == "jobs" {
			return c.GetObject().(*batchv1.Job), c
		}
	}
	f.t.Fatal("no Job was created")
	return nil, core.CreateActionImpl{}
}

// counter reads one labelled counter from the agent's registry.
func counter(t *testing.T, m *health.Metrics, name, label string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, metric := range fam.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetValue() == label {
					return metric.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// awaitQueued fails unless key shows up in a queue (through get), for
// requeues that a fake clock's step releases on the queue's own goroutine.
func (f *fixture) awaitQueued(get func() (string, bool), done func(string), key string) {
	f.t.Helper()
	got := make(chan string, 1)
	go func() {
		k, _ := get()
		got <- k
	}()
	select {
	case k := <-got:
		assert.Equal(f.t, key, k)
		done(k)
	case <-time.After(10 * time.Second):
		f.t.Fatalf("%s not requeued", key)
	}
}

func decode(t testing.TB, cm *corev1.ConfigMap) connection.Connection {
	t.Helper()
	c, err := connrecord.Decode(cm)
	require.NoError(t, err)
	return c
}

func encode(t testing.TB, c connection.Connection) *corev1.ConfigMap { return records.ConfigMap(t, c) }
