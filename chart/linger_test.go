package chart

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
)

// job.linger goes to the agent, which passes it to the sc-job runs it
// launches; the render hook never lingers (helm upgrade waits for it).
func TestJobLinger(t *testing.T) {
	r := render(t, minimal())
	args := argMap(find[*appsv1.Deployment](t, r, "sc-agent").Spec.Template.Spec.Containers[0].Args)
	assert.Equal(t, "10s", args["--job-linger"], "the default")

	r = render(t, with(map[string]any{"job.linger": "1500ms"}))
	args = argMap(find[*appsv1.Deployment](t, r, "sc-agent").Spec.Template.Spec.Containers[0].Args)
	assert.Equal(t, "1500ms", args["--job-linger"])
	hook := argMap(find[*batchv1.Job](t, r, "sc-job-render").Spec.Template.Spec.Containers[0].Args)
	assert.NotContains(t, hook, "--linger")

	r = render(t, with(map[string]any{"job.linger": "0"}))
	args = argMap(find[*appsv1.Deployment](t, r, "sc-agent").Spec.Template.Spec.Containers[0].Args)
	assert.Equal(t, "0", args["--job-linger"], "0 ends a run as soon as it is idle")
}

func TestJobLingerSchema(t *testing.T) {
	c := loadChart(t)
	for _, ok := range []string{"0", "0s", "250ms", "9s", "45s", "60s", "1m"} {
		_, err := values(t, c, with(map[string]any{"job.linger": ok}))
		assert.NoError(t, err, ok)
	}
	for _, bad := range []any{"61s", "2m", "1h", "-1s", "10", "soon", "", 10, nil} {
		_, err := values(t, c, with(map[string]any{"job.linger": bad}))
		require.Error(t, err, "%v", bad)
		assert.Contains(t, err.Error(), "linger", "%v", bad)
	}
}

// A run watches the records (one list, then a watch) for work that
// arrives while it runs or lingers: in the release namespace only.
func TestSCJobWatchesRecords(t *testing.T) {
	g := grantsFor(t, render(t, minimal()), "sc-job")
	assert.True(t, g.allows("list", "", "configmaps", releaseNamespace, ""))
	assert.True(t, g.allows("watch", "", "configmaps", releaseNamespace, ""))
	assert.False(t, g.allows("watch", "", "configmaps", "team-a", ""))
}

// job.restartWindow reaches the sc-job runs the agent launches and the
// render hook: both may restart bound workloads.
func TestJobRestartWindow(t *testing.T) {
	r := render(t, minimal())
	args := argMap(find[*appsv1.Deployment](t, r, "sc-agent").Spec.Template.Spec.Containers[0].Args)
	assert.Equal(t, "30s", args["--job-restart-window"], "the default")

	r = render(t, with(map[string]any{"job.restartWindow": "5m"}))
	args = argMap(find[*appsv1.Deployment](t, r, "sc-agent").Spec.Template.Spec.Containers[0].Args)
	assert.Equal(t, "5m", args["--job-restart-window"])
	hook := argMap(find[*batchv1.Job](t, r, "sc-job-render").Spec.Template.Spec.Containers[0].Args)
	assert.Equal(t, "5m", hook["--restart-window"])

	c := loadChart(t)
	for _, bad := range []any{"0", "0s", "500ms", "2h", "soon", 30} {
		_, err := values(t, c, with(map[string]any{"job.restartWindow": bad}))
		require.Error(t, err, "%v", bad)
		assert.Contains(t, err.Error(), "restartWindow", "%v", bad)
	}
}
