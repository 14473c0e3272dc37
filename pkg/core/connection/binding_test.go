package connection

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseWorkloadKindIgnoresCase(t *testing.T) {
	for _, in := range []string{"deployment", "Deployment", "DEPLOYMENT"} {
		k, ok := ParseWorkloadKind(in)
		require.True(t, ok, in)
		assert.Equal(t, WorkloadDeployment, k)
	}
	for in, want := range map[string]WorkloadKind{"statefulset": WorkloadStatefulSet, "daemonSet": WorkloadDaemonSet, "cronjob": WorkloadCronJob} {
		k, ok := ParseWorkloadKind(in)
		require.True(t, ok, in)
		assert.Equal(t, want, k)
	}
	for _, in := range []string{"", "job", "pod", "deployments", "apps/v1.Deployment"} {
		_, ok := ParseWorkloadKind(in)
		assert.False(t, ok, in)
	}
}

func TestWorkloadKindKnownIsExact(t *testing.T) {
	for _, k := range WorkloadKinds {
		assert.True(t, k.Known(), k)
	}
	assert.False(t, WorkloadKind("deployment").Known(), "the wire spelling is the Kubernetes kind")
	assert.False(t, WorkloadKind("Job").Known())
}

func TestBindingModeOrDefault(t *testing.T) {
	var none *Binding
	assert.Equal(t, BindingEnv, none.ModeOrDefault())
	assert.Equal(t, BindingEnv, (&Binding{}).ModeOrDefault())
	assert.Equal(t, BindingVolume, (&Binding{Mode: BindingVolume}).ModeOrDefault())
}

func TestBindingBound(t *testing.T) {
	var none *Binding
	assert.False(t, none.Bound(WorkloadDeployment, "app"))
	b := &Binding{Workloads: []Workload{{Kind: WorkloadDeployment, Name: "app"}}}
	assert.True(t, b.Bound(WorkloadDeployment, "app"))
	assert.False(t, b.Bound(WorkloadStatefulSet, "app"), "the kind is part of the identity")
	assert.False(t, b.Bound(WorkloadDeployment, "app2"))
}

func TestSpecWithoutBindingMarshalsAsBefore(t *testing.T) {
	// A spec without a binding must read the same to a v0.1.0 agent.
	s, _ := secretSpec()
	raw, err := json.Marshal(s)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "binding")

	s.Binding = &Binding{Workloads: []Workload{{Kind: WorkloadCronJob, Name: "nightly"}}}
	raw, err = json.Marshal(s)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"binding":{"workloads":[{"kind":"CronJob","name":"nightly"}]}`)
	var back Spec
	require.NoError(t, json.Unmarshal(raw, &back))
	assert.Equal(t, s, back)
}
