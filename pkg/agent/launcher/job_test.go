package launcher

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// The log format is the only environment variable sc-job gets, and only when
// the agent was told one; nothing else travels in env.
func TestJobSpecCarriesLogFormat(t *testing.T) {
	for _, format := range []string{LogFormatText, LogFormatJSON} {
		t.Run(format, func(t *testing.T) {
			c := testConfig()
			c.LogFormat = format
			require.NoError(t, c.WithDefaults().Validate())
			job := jobFor(c.WithDefaults(), newWork([]workItem{item("a", 1)}))
			require.Len(t, job.Spec.Template.Spec.Containers, 1)
			ctr := job.Spec.Template.Spec.Containers[0]
			assert.Equal(t, []corev1.EnvVar{{Name: "SC_LOG_FORMAT", Value: format}}, ctr.Env)
			assert.Empty(t, ctr.EnvFrom)
		})
	}

	job := jobFor(testConfig().WithDefaults(), newWork([]workItem{item("a", 1)}))
	assert.Empty(t, job.Spec.Template.Spec.Containers[0].Env, "no format given: sc-job keeps its own default")
}

func TestLogFormatIsValidated(t *testing.T) {
	c := testConfig()
	c.LogFormat = "xml"
	err := c.WithDefaults().Validate()
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), `log format "xml" is not one of text, json`)
}

// sc-job gets the agent's namespace policy as flags, before the extra
// arguments; with no lists it gets none (it still denies its own and the
// system namespaces).
func TestJobSpecCarriesNamespacePolicy(t *testing.T) {
	c := testConfig()
	c.WatchNamespaces, c.DeniedNamespaces = []string{"team-a", "team-b"}, []string{"payments"}
	require.NoError(t, c.WithDefaults().Validate())
	job := jobFor(c.WithDefaults(), newWork([]workItem{item("a", 1)}))
	assert.Equal(t, []string{"--namespace=" + ns, "--job-name=sc-job", "--watch-namespaces=team-a,team-b", "--denied-namespaces=payments", "--log-level=info"},
		job.Spec.Template.Spec.Containers[0].Args)

	job = jobFor(testConfig().WithDefaults(), newWork([]workItem{item("a", 1)}))
	assert.Equal(t, []string{"--namespace=" + ns, "--job-name=sc-job", "--log-level=info"}, job.Spec.Template.Spec.Containers[0].Args)

	c.QPS, c.Burst, c.Workers, c.Linger, c.RestartWindow = 250.5, 500, 12, 10*time.Second, time.Minute
	job = jobFor(c.WithDefaults(), newWork([]workItem{item("a", 1)}))
	assert.Equal(t, []string{"--namespace=" + ns, "--job-name=sc-job", "--watch-namespaces=team-a,team-b", "--denied-namespaces=payments",
		"--qps=250.5", "--burst=500", "--workers=12", "--linger=10s", "--restart-window=1m0s", "--log-level=info"},
		job.Spec.Template.Spec.Containers[0].Args, "sc-job's client rate, workers, linger and restart window, when set")
	c.QPS, c.Burst, c.Workers, c.Linger, c.RestartWindow = 0, 0, 0, 0, 0

	c.Linger = -time.Second
	require.ErrorIs(t, c.WithDefaults().Validate(), ErrInvalidConfig)
	c.Linger, c.ActiveDeadlineSeconds = time.Minute, 60
	err := c.WithDefaults().Validate()
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "linger 1m0s is not below the active deadline of 60s")
	c.Linger, c.ActiveDeadlineSeconds = 0, 600

	c.Workers = -1
	err = c.WithDefaults().Validate()
	require.ErrorIs(t, err, ErrInvalidConfig)
	c.Workers = 0

	c.DeniedNamespaces = []string{"a,b"}
	err = c.WithDefaults().Validate()
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), `deniedNamespaces: "a,b" is not a namespace name`)
}
