package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// The chart's Deployment args, verbatim in shape.
var chartArgs = []string{
	"--cluster=c1", "--namespace=sc-system", "--nats-url=nats://10.0.0.5:4222",
	"--lease-name=sc-agent", "--metrics-addr=:8080", "--log-level=debug",
	"--job-image=localhost/sc-extension/job:dev", "--job-image-pull-policy=IfNotPresent",
	"--job-service-account=sc-job", "--job-backoff-limit=1", "--job-active-deadline-seconds=600",
	"--job-keep-failed-for=15m", "--job-log-format=json",
	`--job-resources={"limits":{"memory":"256Mi"},"requests":{"cpu":"50m","memory":"64Mi"}}`,
	`--job-node-selector={"kubernetes.io/os":"linux"}`,
	`--job-tolerations=[{"key":"CriticalAddonsOnly","operator":"Exists"}]`,
	"--watch-namespaces=team-a,team-b", "--denied-namespaces=kube-system",
	"--job-qps=500", "--job-burst=1000", "--job-workers=16", "--job-linger=10s", "--job-restart-window=45s",
	"--kube-api-qps=150", "--kube-api-burst=300",
}

func TestParseChartArgs(t *testing.T) {
	password := fmt.Sprintf("cred-VALUE-%d", time.Now().UnixNano())
	cfg, secret, err := parseConfig(chartArgs, envOf(map[string]string{
		"POD_NAME": "sc-agent-7d9f-abc", "SC_NATS_USER": "agent-c1", "SC_NATS_PASSWORD": password,
	}))
	require.NoError(t, err)
	assert.Equal(t, "c1", cfg.Cluster)
	assert.Equal(t, "sc-agent-7d9f-abc", cfg.PodName)
	assert.Equal(t, "agent-c1", cfg.NATSUser)
	assert.Equal(t, password, string(secret))
	assert.Equal(t, 15*time.Minute, cfg.Job.KeepFailedFor)
	assert.Equal(t, int32(1), cfg.Job.BackoffLimit)
	assert.Equal(t, int64(600), cfg.Job.ActiveDeadlineSeconds)
	assert.Equal(t, "sc-job", cfg.Job.JobName)
	assert.Equal(t, "sc-system", cfg.Job.Namespace)
	assert.Equal(t, []string{"--log-level=debug"}, cfg.Job.ExtraArgs)
	assert.Equal(t, "json", cfg.Job.LogFormat)
	assert.True(t, resource.MustParse("256Mi").Equal(cfg.Job.Resources.Limits[corev1.ResourceMemory]))
	assert.Equal(t, map[string]string{"kubernetes.io/os": "linux"}, cfg.Job.NodeSelector)
	assert.Equal(t, "CriticalAddonsOnly", cfg.Job.Tolerations[0].Key)
	assert.Equal(t, []string{"team-a", "team-b"}, cfg.Namespaces.Watch)
	assert.Equal(t, []string{"kube-system"}, cfg.Namespaces.Denied)
	assert.Equal(t, 15*time.Second, cfg.HeartbeatInterval)
	assert.Equal(t, 500.0, cfg.Job.QPS)
	assert.Equal(t, 1000, cfg.Job.Burst)
	assert.Equal(t, 16, cfg.Job.Workers)
	assert.Equal(t, 10*time.Second, cfg.Job.Linger)
	assert.Equal(t, 45*time.Second, cfg.Job.RestartWindow)
	assert.Equal(t, 150.0, cfg.KubeQPS)
	assert.Equal(t, 300, cfg.KubeBurst)

	// The password is kept out of the config and redacts itself.
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg),
		fmt.Sprint(secret), fmt.Sprintf("%v %s %#v", secret, secret, secret)} {
		assert.NotContains(t, s, password)
	}
}

func TestEnvironmentDefaults(t *testing.T) {
	cfg, _, err := parseConfig(nil, envOf(map[string]string{
		"SC_CLUSTER": "c2", "SC_NATS_URL": "nats://x:4222", "SC_JOB_IMAGE": "img", "POD_NAMESPACE": "ext",
		"POD_NAME": "p",
	}))
	require.NoError(t, err)
	assert.Equal(t, "c2", cfg.Cluster)
	assert.Equal(t, "ext", cfg.Namespace)
	assert.Equal(t, "ext", cfg.Job.Namespace)
	assert.Equal(t, "text", cfg.Job.LogFormat, "sc-job logs text unless told otherwise")

	cfg, _, err = parseConfig([]string{"--cluster=flag"}, envOf(map[string]string{
		"SC_CLUSTER": "env", "SC_NATS_URL": "nats://x:4222", "SC_JOB_IMAGE": "img", "POD_NAME": "p",
	}))
	require.NoError(t, err)
	assert.Equal(t, "flag", cfg.Cluster, "a flag wins over the environment")
}

func TestParseRejects(t *testing.T) {
	base := map[string]string{"POD_NAME": "p"}
	tests := map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"missing required":      {nil, base, "--cluster is required"},
		"bad duration":          {append(chartArgs[:len(chartArgs):len(chartArgs)], "--job-keep-failed-for=soon"), base, "--job-keep-failed-for"},
		"negative keep":         {append(chartArgs[:len(chartArgs):len(chartArgs)], "--job-keep-failed-for=-1m"), base, "must be positive"},
		"bad resources json":    {append(chartArgs[:len(chartArgs):len(chartArgs)], `--job-resources={"limitz":{}}`), base, "--job-resources"},
		"user without password": {chartArgs, map[string]string{"POD_NAME": "p", "SC_NATS_USER": "u"}, "must be set together"},
		"creds and user": {append(chartArgs[:len(chartArgs):len(chartArgs)], "--nats-creds=/x"),
			map[string]string{"POD_NAME": "p", "SC_NATS_USER": "u", "SC_NATS_PASSWORD": "cred-VALUE-1"}, "not both"},
		"bad job qps":      {append(chartArgs[:len(chartArgs):len(chartArgs)], "--job-qps=fast"), base, "--job-qps"},
		"zero kube qps":    {append(chartArgs[:len(chartArgs):len(chartArgs)], "--kube-api-qps=0"), base, "--kube-api-qps must be positive"},
		"bad kube burst":   {append(chartArgs[:len(chartArgs):len(chartArgs)], "--kube-api-burst=lots"), base, "--kube-api-burst"},
		"zero job workers": {append(chartArgs[:len(chartArgs):len(chartArgs)], "--job-workers=0"), base, "--job-workers must be positive"},
		"bad job linger":   {append(chartArgs[:len(chartArgs):len(chartArgs)], "--job-linger=soon"), base, "--job-linger"},
		"negative linger":  {append(chartArgs[:len(chartArgs):len(chartArgs)], "--job-linger=-1s"), base, "--job-linger must not be negative"},
		"linger past deadline": {append(chartArgs[:len(chartArgs):len(chartArgs)], "--job-linger=10m"), base,
			"linger 10m0s is not below the active deadline of 600s"},
		"NaN kube qps":     {append(chartArgs[:len(chartArgs):len(chartArgs)], "--kube-api-qps=NaN"), base, "--kube-api-qps must be positive and finite"},
		"empty kube qps":   {append(chartArgs[:len(chartArgs):len(chartArgs)], "--kube-api-qps="), base, "--kube-api-qps must be set"},
		"infinite job qps": {append(chartArgs[:len(chartArgs):len(chartArgs)], "--job-qps=+Inf"), base, "--job-qps must be positive and finite"},
		"fractional burst": {append(chartArgs[:len(chartArgs):len(chartArgs)], "--job-burst=1.5"), base, "--job-burst"},
		"bad job log format": {append(chartArgs[:len(chartArgs):len(chartArgs)], "--job-log-format=xml"), base,
			`--job-log-format: "xml" is not one of text, json`},
		"bad job log format from env": {[]string{"--cluster=c1", "--nats-url=nats://x:4222", "--job-image=img"},
			map[string]string{"POD_NAME": "p", "SC_JOB_LOG_FORMAT": "yaml"}, `--job-log-format: "yaml" is not one of text, json`},
		"stray argument": {append(chartArgs[:len(chartArgs):len(chartArgs)], "extra"), base, "unexpected arguments"},
		"watch list typo": {append(chartArgs[:len(chartArgs):len(chartArgs)], "--watch-namespaces=team-a,Team_B"), base,
			`watchNamespaces: "Team_B" is not a namespace name`},
		"denied list from env": {[]string{"--cluster=c1", "--nats-url=nats://x:4222", "--job-image=img"},
			map[string]string{"POD_NAME": "p", "SC_DENIED_NAMESPACES": "ok,not ok"}, `deniedNamespaces: "not ok" is not a namespace name`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := parseConfig(tt.args, envOf(tt.env))
			require.ErrorIs(t, err, errUsage)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "cred-VALUE")
		})
	}
}

func TestLogLevel(t *testing.T) {
	_, err := newLogger("debug")
	require.NoError(t, err)
	_, err = newLogger("loud")
	require.ErrorIs(t, err, errUsage)
}

// The flags are parsed once into the namespace policy, with the agent's own
// namespace as the release namespace; the intake, drift and sc-job (told
// it in its Job args) all use it.
func TestNamespacePolicyFlags(t *testing.T) {
	cfg, _, err := parseConfig(chartArgs, envOf(map[string]string{"POD_NAME": "p"}))
	require.NoError(t, err)
	assert.Equal(t, namespaces.Policy{Release: "sc-system", Watch: []string{"team-a", "team-b"}, Denied: []string{"kube-system"}}, cfg.Namespaces)
	assert.Equal(t, []string{"team-a", "team-b"}, cfg.Job.WatchNamespaces)
	assert.Equal(t, []string{"kube-system"}, cfg.Job.DeniedNamespaces)
	require.ErrorIs(t, cfg.Namespaces.Allows("sc-system"), namespaces.ErrNotAllowed, "the release namespace is always denied")
	require.ErrorIs(t, cfg.Namespaces.Allows("team-c"), namespaces.ErrNotAllowed, "outside the watch list")
	require.NoError(t, cfg.Namespaces.Allows("team-b"))

	cfg, _, err = parseConfig([]string{"--cluster=c1", "--nats-url=nats://x:4222", "--job-image=img", "--namespace=ext"},
		envOf(map[string]string{"POD_NAME": "p", "SC_WATCH_NAMESPACES": " team-a , ,team-b", "SC_DENIED_NAMESPACES": "payments"}))
	require.NoError(t, err)
	assert.Equal(t, namespaces.Policy{Release: "ext", Watch: []string{"team-a", "team-b"}, Denied: []string{"payments"}}, cfg.Namespaces,
		"from the environment, blanks dropped")

	cfg, _, err = parseConfig([]string{"--cluster=c1", "--nats-url=nats://x:4222", "--job-image=img"}, envOf(map[string]string{"POD_NAME": "p"}))
	require.NoError(t, err)
	assert.Equal(t, namespaces.Policy{Release: "sc-system"}, cfg.Namespaces, "no lists: every namespace but the release and system ones")
	assert.Empty(t, cfg.Job.WatchNamespaces)
	assert.Empty(t, cfg.Job.DeniedNamespaces)
}

// Without the flags the agent's client gets room for the intake's store
// writes next to its informers and Lease renewals (30 QPS held a burst of
// requests near 7/s; 200 stores about 100 new connections a second).
func TestKubeClientRateDefaults(t *testing.T) {
	cfg, _, err := parseConfig([]string{"--cluster=c1", "--nats-url=nats://x:4222", "--job-image=img"},
		envOf(map[string]string{"POD_NAME": "p"}))
	require.NoError(t, err)
	assert.Equal(t, 200.0, cfg.KubeQPS)
	assert.Equal(t, 400, cfg.KubeBurst)
}
