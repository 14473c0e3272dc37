package launcher

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	core "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// previousJob is a Job an earlier release of the agent built for items: the
// previous sc-job image and one argument fewer.
func previousJob(items ...workItem) *batchv1.Job {
	cfg := testConfig()
	cfg.Image = "localhost/sc-extension/job:v0.1.0"
	cfg.ExtraArgs = nil
	j := jobFor(cfg.WithDefaults(), newWork(items))
	j.UID = "uid-job-1"
	j.ResourceVersion = "5"
	return j
}

// preHashJob is a Job of a release before template hashes: it has none.
func preHashJob(items ...workItem) *batchv1.Job {
	j := ourJob(items...)
	delete(j.Annotations, AnnotationTemplate)
	return j
}

func TestRunningOutdatedJobIsReplaced(t *testing.T) {
	for name, job := range map[string]*batchv1.Job{
		"other template": previousJob(item("a", 1)),
		"no template":    preHashJob(item("a", 1)),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t,
				recordCM(t, "a", connection.PhaseRunning, 1), // the old run is on it
				recordCM(t, "late", connection.PhasePending, 1),
				job,
			)
			f.process()

			require.Equal(t, []string{deleteJob, createJob}, f.actions())
			del := f.client.Actions()[0].(core.DeleteActionImpl)
			assert.Equal(t, metav1.DeletePropagationBackground, *del.DeleteOptions.PropagationPolicy)
			assert.Equal(t, "uid-job-1", string(*del.DeleteOptions.Preconditions.UID), "never deletes a Job it did not look at")

			created, _ := f.createdJob()
			assert.Equal(t, f.c.template, created.Annotations[AnnotationTemplate])
			assert.Equal(t, "localhost/sc-extension/job:dev", created.Spec.Template.Spec.Containers[0].Image)
			assert.Equal(t, newWork([]workItem{item("a", 1), item("late", 1)}).digest, created.Annotations[AnnotationDigest])
			assert.Equal(t, []string{
				"Normal JobReplaced Replaced sc-job that was running because its pod template is outdated " +
					"(an earlier release or configuration of the agent built it); started it for 2 pending connection(s): a, late",
			}, f.events())
			assert.Contains(t, f.logs.String(), `"message":"replacing outdated sc-job"`)
			assert.Equal(t, 1.0, counter(t, f.metrics, "sc_agent_jobs_launched_total", "replaced"))
			assert.Equal(t, 0, f.c.worker.Queue().NumRequeues(f.c.key))
		})
	}
}

// A warm run of the previous release with nothing to do would still take the
// next request: it goes, and nothing replaces it until work is due.
func TestRunningOutdatedJobWithNothingDueIsDeleted(t *testing.T) {
	f := newFixture(t,
		recordCM(t, "a", connection.PhaseSucceeded, 1),
		waitingCM(t, "b", connection.PhasePending, "Retrying", 1, epoch.Add(time.Minute)),
		previousJob(item("a", 1)),
	)
	after, err := f.c.sync(context.Background())
	require.NoError(t, err)
	assert.Equal(t, time.Minute, after, "looked at again when the backoff ends")
	require.Equal(t, []string{deleteJob}, f.actions())
	del := f.client.Actions()[0].(core.DeleteActionImpl)
	assert.Equal(t, "uid-job-1", string(*del.DeleteOptions.Preconditions.UID))
	assert.Equal(t, []string{
		"Normal JobDeleted Deleted running sc-job because its pod template is outdated " +
			"(an earlier release or configuration of the agent built it); nothing is due, so none was started",
	}, f.events())
	assert.Equal(t, 0.0, counter(t, f.metrics, "sc_agent_jobs_launched_total", "replaced"))
}

func TestRunningCurrentJobIsLeftAloneEvenWithNewWork(t *testing.T) {
	job := ourJob(item("a", 1))
	require.NotEmpty(t, job.Annotations[AnnotationTemplate])
	job.Status.Active = 1
	f := newFixture(t,
		recordCM(t, "a", connection.PhaseRunning, 1),
		recordCM(t, "late", connection.PhasePending, 1),
		job,
	)
	f.process()
	assert.Empty(t, f.actions())
	assert.Empty(t, f.events())
	assert.Equal(t, 0, f.c.worker.Queue().NumRequeues(f.c.key))
}

// A finished Job is judged as before, whatever built it: a failed one stays
// for kubectl logs until the keep time or new work.
func TestFinishedOutdatedJobKeepsItsRules(t *testing.T) {
	t.Run("failed, same work, kept", func(t *testing.T) {
		f := newFixture(t,
			recordCM(t, "a", connection.PhasePending, 1),
			withCondition(previousJob(item("a", 1)), batchv1.JobFailed, "BackoffLimitExceeded", epoch.Add(-time.Minute)),
		)
		after, err := f.c.sync(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 14*time.Minute, after)
		assert.Empty(t, f.actions())
		assert.Empty(t, f.events())
	})
	t.Run("failed, new work, replaced", func(t *testing.T) {
		f := newFixture(t,
			recordCM(t, "b", connection.PhasePending, 1),
			withCondition(preHashJob(item("a", 1)), batchv1.JobFailed, "BackoffLimitExceeded", epoch),
		)
		f.process()
		require.Equal(t, []string{deleteJob, createJob}, f.actions())
		assert.Equal(t, []string{
			"Normal JobReplaced Replaced sc-job that failed (BackoffLimitExceeded) because new work arrived; started it for 1 pending connection(s): b",
		}, f.events())
	})
	t.Run("completed, nothing due, left", func(t *testing.T) {
		f := newFixture(t,
			recordCM(t, "a", connection.PhaseSucceeded, 1),
			withCondition(previousJob(item("a", 1)), batchv1.JobComplete, "CompletionsReached", epoch),
		)
		f.process()
		assert.Empty(t, f.actions())
	})
}

func TestOutdatedJobDeleteConflictRequeuesWithoutCreating(t *testing.T) {
	f := newFixture(t, recordCM(t, "a", connection.PhasePending, 1), previousJob(item("a", 1)))
	f.client.PrependReactor("delete", "jobs", func(core.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "batch", Resource: "jobs"}, "sc-job",
			errors.New("Precondition failed: UID in precondition"))
	})
	f.process()
	assert.Equal(t, []string{deleteJob}, f.actions())
	assert.Empty(t, f.events())
	assert.Equal(t, 1, f.c.worker.Queue().NumRequeues(f.c.key))
}

// The template hash follows what the configuration puts in the Job and
// nothing else: not the work, not a second build.
func TestTemplateHashFollowsTheConfiguration(t *testing.T) {
	base := func() Config { return testConfig() }
	hash := func(c Config, items ...workItem) string {
		t.Helper()
		h := jobFor(c.WithDefaults(), newWork(items)).Annotations[AnnotationTemplate]
		require.Len(t, h, 32)
		return h
	}
	want := hash(base())
	assert.Equal(t, want, hash(base()), "stable across builds")
	assert.Equal(t, want, hash(base(), item("a", 1), item("b", 7)), "the work is the digest's, not the template's")

	for name, change := range map[string]func(*Config){
		"image":            func(c *Config) { c.Image = "localhost/sc-extension/job:v2" },
		"pull policy":      func(c *Config) { c.ImagePullPolicy = corev1.PullAlways },
		"extra args":       func(c *Config) { c.ExtraArgs = []string{"--log-level=debug"} },
		"linger":           func(c *Config) { c.Linger = 10 * time.Second },
		"workers":          func(c *Config) { c.Workers = 4 },
		"namespace policy": func(c *Config) { c.DeniedNamespaces = []string{"payments"} },
		"env":              func(c *Config) { c.LogFormat = LogFormatJSON },
		"service account":  func(c *Config) { c.ServiceAccount = "other" },
		"resources": func(c *Config) {
			c.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")}}
		},
		"tolerations":     func(c *Config) { c.Tolerations = nil },
		"backoff limit":   func(c *Config) { c.BackoffLimit = 3 },
		"active deadline": func(c *Config) { c.ActiveDeadlineSeconds = 900 },
		"priority class":  func(c *Config) { c.PriorityClassName = "system-cluster-critical" },
		"image pull secret": func(c *Config) {
			c.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		},
	} {
		c := base()
		change(&c)
		assert.NotEqual(t, want, hash(c), name)
	}

	// KeepFailedFor is the launcher's own setting, not the Job's.
	c := base()
	c.KeepFailedFor = time.Hour
	assert.Equal(t, want, hash(c))
}
