//go:build integration

package launcher_integration

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// waitEvent waits until an Event on the Job sc-job starts with prefix.
func (e *env) waitEvent(prefix string) string {
	e.t.Helper()
	var found string
	err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		i := slices.IndexFunc(e.eventsFor("Job", launcher.DefaultJobName), func(ev string) bool { return strings.HasPrefix(ev, prefix) })
		if i < 0 {
			return false, nil
		}
		found = e.eventsFor("Job", launcher.DefaultJobName)[i]
		return true, nil
	})
	require.NoError(e.t, err, "waiting for an Event %s on the Job: %v", prefix, e.eventsFor("Job", launcher.DefaultJobName))
	return found
}

// A helm upgrade: the previous release's agent launched sc-job, which is
// still running (lingering, or on a stream of work) when the new agent's
// launcher starts. The new launcher replaces it with a Job of its own
// template; a Job of its own template it leaves alone.
func TestUpgradeReplacesThePreviousReleasesRunningJob(t *testing.T) {
	e := setup(t)
	e.putRecord("a", connection.PhasePending, 1)

	previous := e.config()
	previous.Image = "localhost/sc-extension/job:v0.1.0"
	stopPrevious := e.runLauncher(previous)
	old := e.waitJob("the previous release launched", func(*batchv1.Job) bool { return true })
	require.NotEmpty(t, old.Annotations[launcher.AnnotationTemplate])
	e.waitEvent(launcher.ReasonLaunched)
	stopPrevious()

	// Nothing runs its pod here (no kubelet): the Job stays unfinished, as a
	// warm sc-job does. Work sent during the upgrade.
	got, err := e.client.BatchV1().Jobs(e.ns).Get(e.ctx, launcher.DefaultJobName, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, old.UID, got.UID)
	require.Empty(t, got.Status.Conditions, "the previous run is still running")
	e.putRecord("b", connection.PhasePending, 1)

	current := e.config()
	current.Linger = 10 * time.Second
	e.runLauncher(current)
	fresh := e.waitJob("replaced the previous release's", func(j *batchv1.Job) bool { return j.UID != old.UID })
	assert.Equal(t, "localhost/sc-extension/job:dev", fresh.Spec.Template.Spec.Containers[0].Image)
	assert.Contains(t, fresh.Spec.Template.Spec.Containers[0].Args, "--linger=10s")
	assert.NotEqual(t, old.Annotations[launcher.AnnotationTemplate], fresh.Annotations[launcher.AnnotationTemplate])
	assert.Equal(t, "2", fresh.Annotations[launcher.AnnotationPending])
	assert.Equal(t, "JobReplaced: Replaced sc-job that was running because its pod template is outdated "+
		"(an earlier release or configuration of the agent built it); started it for 2 pending connection(s): a, b",
		e.waitEvent(launcher.ReasonReplaced))
	assert.Contains(t, e.logs.String(), "replacing outdated sc-job")

	// New work while the current release's Job runs: it is left to drain it.
	e.putRecord("c", connection.PhasePending, 1)
	err = wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 3*time.Second, true, func(ctx context.Context) (bool, error) {
		j, err := e.client.BatchV1().Jobs(e.ns).Get(ctx, launcher.DefaultJobName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			return false, nil // the poll's own deadline
		}
		return j.UID != fresh.UID, nil
	})
	require.ErrorIs(t, err, context.DeadlineExceeded, "a running Job of the current template is never replaced")
	var ours []string
	for _, ev := range e.eventsFor("Job", launcher.DefaultJobName) {
		if strings.HasPrefix(ev, "Job") { // the Job controller's are SuccessfulCreate
			ours = append(ours, strings.SplitN(ev, ":", 2)[0])
		}
	}
	assert.Equal(t, []string{launcher.ReasonLaunched, launcher.ReasonReplaced}, ours, "one launch, one replacement")
}

// A Job of a release before template hashes, warm with nothing to do: it
// is deleted, and nothing takes its place until work is due.
func TestRunningJobWithoutTemplateIsDeletedWhenNothingIsDue(t *testing.T) {
	e := setup(t)
	e.putRecord("done", connection.PhaseSucceeded, 1)
	labels := map[string]string{connection.LabelManagedBy: connection.ManagedByValue, launcher.LabelName: launcher.DefaultJobName}
	old, err := e.client.BatchV1().Jobs(e.ns).Create(e.ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: launcher.DefaultJobName, Labels: labels,
			Annotations: map[string]string{launcher.AnnotationDigest: "0123456789abcdef0123456789abcdef"}},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](1),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever, ServiceAccountName: "sc-job",
					Containers: []corev1.Container{{Name: "sc-job", Image: "localhost/sc-extension/job:v0.1.0",
						Args: []string{"--namespace=" + e.ns, "--job-name=sc-job"}}},
				},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	e.startLauncher()
	require.NoError(t, wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := e.client.BatchV1().Jobs(e.ns).Get(ctx, launcher.DefaultJobName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}), "the outdated Job is deleted")
	assert.Equal(t, "JobDeleted: Deleted running sc-job because its pod template is outdated "+
		"(an earlier release or configuration of the agent built it); nothing is due, so none was started",
		e.waitEvent(launcher.ReasonDeleted))

	e.putRecord("a", connection.PhasePending, 1)
	fresh := e.waitJob("launched for new work", func(j *batchv1.Job) bool { return j.UID != old.UID })
	assert.NotEmpty(t, fresh.Annotations[launcher.AnnotationTemplate])
	assert.Contains(t, e.waitEvent(launcher.ReasonLaunched), "Started sc-job for 1 pending connection(s): a")
}
