package launcher

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
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

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

const ns = "sc-system"

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

// recordCM is a connection record ConfigMap as far as the launcher cares. The
// launcher reads records only through its Decoder, so the tests encode the
// two fields it uses in plain data keys and decode them with testDecode.
func recordCM(id string, phase connection.Phase, generation int64) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: connection.ConfigMapName(id), UID: types.UID("uid-" + id), ResourceVersion: "1",
			Labels: map[string]string{connection.LabelManagedBy: connection.ManagedByValue, connection.LabelConnection: id},
		},
		Data: map[string]string{"phase": string(phase), "generation": strconv.FormatInt(generation, 10)},
	}
}

func testDecode(cm *corev1.ConfigMap) (connection.Connection, error) {
	gen, err := strconv.ParseInt(cm.Data["generation"], 10, 64)
	if err != nil {
		return connection.Connection{}, fmt.Errorf("record %s: generation: %w", cm.Name, err)
	}
	return connection.Connection{
		Spec:       connection.Spec{Name: cm.Labels[connection.LabelConnection]},
		Generation: gen,
		Status:     connection.Status{Phase: connection.Phase(cm.Data["phase"]), LastRequestID: cm.Data["request"]},
	}, nil
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
	t        *testing.T
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
func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
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
	records := f.factory.Core().V1().ConfigMaps()
	jobs := f.factory.Batch().V1().Jobs()
	c, err := New(Deps{
		Client: f.client, Records: records, Jobs: jobs, Decode: testDecode,
		Recorder: f.recorder, Clock: f.clock, Metrics: f.metrics,
		Log: zerolog.New(f.logs).Level(zerolog.DebugLevel),
	}, testConfig())
	require.NoError(t, err)
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			require.NoError(t, records.Informer().GetIndexer().Add(o))
		case *batchv1.Job:
			require.NoError(t, jobs.Informer().GetIndexer().Add(o))
		}
	}
	f.c = c
	t.Cleanup(c.queue.ShutDown)
	return f
}

// action is the part of a client action the tests compare.
type action struct {
	Verb, Resource, Namespace, Name string
}

func (f *fixture) actions() []action {
	var out []action
	for _, a := range f.client.Actions() {
		got := action{Verb: a.GetVerb(), Resource: a.GetResource().Resource, Namespace: a.GetNamespace()}
		switch a := a.(type) {
		case core.CreateAction:
			if m, ok := a.GetObject().(metav1.Object); ok {
				got.Name = m.GetName()
			}
		case core.DeleteAction:
			got.Name = a.GetName()
		case core.GetAction:
			got.Name = a.GetName()
		}
		out = append(out, got)
	}
	return out
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// process runs one work item through the queue, as a worker would.
func (f *fixture) process() {
	f.t.Helper()
	f.c.queue.Add(f.c.key)
	require.True(f.t, f.c.processNextWorkItem(context.Background()))
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
