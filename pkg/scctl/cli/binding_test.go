package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// buildUpdate parses args as update's flags (--unbind included) and builds
// the spec from base.
func buildUpdate(t *testing.T, target string, base *connection.Spec, args ...string) (connection.Spec, error) {
	t.Helper()
	var f specFlags
	fs := pflag.NewFlagSet("update", pflag.ContinueOnError)
	f.register(fs)
	f.binding.registerUnbind(fs)
	require.NoError(t, fs.Parse(args))
	spec, _, err := f.build(target, base)
	return spec, err
}

// a heartbeat of an agent built from this tree: it binds
func bindingAgent() protocol.Heartbeat {
	hb := heartbeatOf("v0.2.0")
	hb.Features = protocol.Features()
	return hb
}

var createArgs = []string{"connection", "create", "storage-blob", "--cluster", "c1", "--connection", "c",
	"--target-id", storageID, "--secret", "connection-string=cred-VALUE-bind", "--no-wait"}

func TestBuildBindingFromFlags(t *testing.T) {
	spec, _, err := buildSpec(t, "storage-blob", nil, "--connection", "c", "--target-id", storageID,
		"--workload-identity", "client-id="+clientID,
		"--workload", "deployment/app,container=web,container=sidecar", "--workload", "CronJob/nightly",
		"--workload", "STATEFULSET/db", "--workload", "daemonSet/agent",
		"--binding-mode", "volume", "--no-restart")
	require.NoError(t, err)
	assert.Equal(t, &connection.Binding{Mode: connection.BindingVolume, NoRestart: true, Workloads: []connection.Workload{
		{Kind: connection.WorkloadDeployment, Name: "app", Containers: []string{"web", "sidecar"}},
		{Kind: connection.WorkloadCronJob, Name: "nightly"},
		{Kind: connection.WorkloadStatefulSet, Name: "db"},
		{Kind: connection.WorkloadDaemonSet, Name: "agent"},
	}}, spec.Binding)

	spec, _, err = buildSpec(t, "storage-blob", nil, "--connection", "c", "--target-id", storageID,
		"--workload-identity", "client-id="+clientID, "--workload", "deployment/app")
	require.NoError(t, err)
	assert.Equal(t, &connection.Binding{Workloads: []connection.Workload{{Kind: connection.WorkloadDeployment, Name: "app"}}},
		spec.Binding, "mode left empty: the agent's default (env)")

	spec, _, err = buildSpec(t, "storage-blob", nil, "--connection", "c", "--target-id", storageID,
		"--workload-identity", "client-id="+clientID)
	require.NoError(t, err)
	assert.Nil(t, spec.Binding, "no binding flag, no binding")
}

// A bad binding flag is a usage error (exit 2) naming the flag and what is
// allowed, before anything is dialled.
func TestBindingFlagErrors(t *testing.T) {
	many := make([]string, 0, 2*(connection.MaxBoundWorkloads+1))
	for i := range connection.MaxBoundWorkloads + 1 {
		many = append(many, "--workload", fmt.Sprintf("deployment/app-%d", i))
	}
	cases := map[string]struct {
		args []string
		want string
	}{
		"unknown kind":     {[]string{"--workload", "pod/x"}, `--workload "pod/x": kind "pod" is not one of deployment, statefulset, daemonset, cronjob`},
		"no kind":          {[]string{"--workload", "app"}, `--workload "app": expected KIND/NAME[,container=C]..., such as deployment/app`},
		"no name":          {[]string{"--workload", "deployment/"}, `--workload "deployment/": the workload's name is missing`},
		"bare container":   {[]string{"--workload", "deployment/app,web"}, `--workload "deployment/app,web": "web" is not container=NAME`},
		"other option":     {[]string{"--workload", "deployment/app,image=x"}, `--workload "deployment/app,image=x": "image=x" is not container=NAME, the only option`},
		"empty container":  {[]string{"--workload", "deployment/app,container="}, `--workload "deployment/app,container=": container= needs a container name`},
		"bad name":         {[]string{"--workload", "deployment/App"}, `--workload #1 name: must be a Kubernetes object name`},
		"bad container":    {[]string{"--workload", "deployment/a", "--workload", "cronjob/b,container=ok,container=Web"}, `--workload #2 container #2: must be a container name`},
		"same container":   {[]string{"--workload", "deployment/a,container=web,container=web"}, `--workload #1 container #2: web appears more than once`},
		"same workload":    {[]string{"--workload", "deployment/a", "--workload", "Deployment/a"}, `--workload #2: Deployment/a is already bound`},
		"too many":         {many, "--workload: has 17 workloads; at most 16 are allowed"},
		"bad mode":         {[]string{"--workload", "deployment/a", "--binding-mode", "envFrom"}, `--binding-mode: "envFrom" is not one of env, volume`},
		"mode alone":       {[]string{"--binding-mode", "volume"}, "--binding-mode needs --workload"},
		"no-restart alone": {[]string{"--no-restart"}, "--no-restart needs --workload"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			plane := &fakePlane{heartbeat: bindingAgent()}
			r := runApp(t, plane, nil, "", false, append(append([]string{}, createArgs...), tc.args...)...)
			assert.Equal(t, ExitUsage, r.code, r.stderr)
			assert.Contains(t, r.stderr, "scctl: "+tc.want)
			assert.Nil(t, r.dialed, "a usage error must not reach the network")
			assert.NotContains(t, r.stderr, "cred-VALUE")
			assert.NotContains(t, r.stderr, "Usage:")
		})
	}

	// keyvaultCsi renders no Secret: nothing to bind
	plane := &fakePlane{heartbeat: bindingAgent()}
	r := runApp(t, plane, nil, "", false, "connection", "create", "keyvault", "--cluster", "c1", "--connection", "kv",
		"--target-id", vaultID, "--keyvault-csi", "tenant-id="+tenantID+",client-id="+clientID, "--workload", "deployment/app")
	assert.Equal(t, ExitUsage, r.code, r.stderr)
	assert.Contains(t, r.stderr, "scctl: --workload: is not supported with auth type keyvaultCsi")
	assert.Nil(t, r.dialed)

	// --unbind is update's
	r = runApp(t, plane, nil, "", false, append(append([]string{}, createArgs...), "--unbind")...)
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "unknown flag: --unbind")
}

func TestUpdateBinding(t *testing.T) {
	stored, _, err := buildSpec(t, "storage-blob", nil, "--connection", "c", "--target-id", storageID,
		"--workload-identity", "client-id="+clientID,
		"--workload", "deployment/app,container=web", "--workload", "cronjob/nightly", "--binding-mode", "volume", "--no-restart")
	require.NoError(t, err)
	require.NotNil(t, stored.Binding)

	// no binding flag: the stored binding as it was
	got, err := buildUpdate(t, "storage-blob", &stored, "--connection", "c", "--customized-keys", "AZURE_STORAGEBLOB_CLIENTID=ID")
	require.NoError(t, err)
	assert.Equal(t, stored.Binding, got.Binding)

	// binding flags: the whole binding, nothing kept from the stored one
	got, err = buildUpdate(t, "storage-blob", &stored, "--connection", "c", "--workload", "statefulset/db")
	require.NoError(t, err)
	assert.Equal(t, &connection.Binding{Workloads: []connection.Workload{{Kind: connection.WorkloadStatefulSet, Name: "db"}}}, got.Binding,
		"mode and no-restart are not kept: what the command line says is the whole binding")

	got, err = buildUpdate(t, "storage-blob", &stored, "--connection", "c", "--unbind")
	require.NoError(t, err)
	assert.Nil(t, got.Binding)

	got, err = buildUpdate(t, "storage-blob", &stored, "--connection", "c", "--unbind=false")
	require.NoError(t, err)
	assert.Equal(t, stored.Binding, got.Binding, "--unbind=false changes nothing")

	unbound := stored
	unbound.Binding = nil
	got, err = buildUpdate(t, "storage-blob", &unbound, "--connection", "c", "--unbind")
	require.NoError(t, err)
	assert.Nil(t, got.Binding, "unbinding an unbound connection is no error")

	_, err = buildUpdate(t, "storage-blob", &stored, "--connection", "c", "--unbind", "--workload", "deployment/app")
	require.ErrorIs(t, err, ErrUsage)
	assert.EqualError(t, err, "--unbind removes the binding; it does not go with --workload")

	_, err = buildUpdate(t, "storage-blob", &stored, "--connection", "c", "--binding-mode", "env")
	require.ErrorIs(t, err, ErrUsage)
	assert.Contains(t, err.Error(), "--binding-mode needs --workload")
}

// An agent whose heartbeat does not advertise binding (v0.1.0 decodes the
// request and drops spec.binding) is refused when a binding flag is used:
// exit 2, one sentence naming the agent's release, nothing asked or sent.
func TestBindingFlagsNeedAnAgentThatBinds(t *testing.T) {
	stampVersion(t, "v0.2.0")
	v010 := protocol.Heartbeat{Header: protocol.NewHeader(protocol.KindHeartbeat), Cluster: "c1", AgentVersion: "v0.1.0"}
	stored := protocol.ConnectionView{Spec: connection.Spec{Name: "c", Scope: "default",
		TargetService:  connection.TargetService{Type: catalog.TargetStorageBlob, ID: storageID},
		AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
		Configurations: []connection.Configuration{{Name: "AZURE_STORAGEBLOB_CONNECTIONSTRING", Credential: true}}}}
	update := []string{"connection", "update", "storage-blob", "--cluster", "c1", "--connection", "c",
		"--secret", "connection-string=cred-VALUE-bind", "--no-wait"}
	want := `scctl: the agent of cluster "c1" (release v0.1.0) does not bind workloads (its heartbeat does not advertise the binding ` +
		"feature; it would ignore the binding); nothing was sent: upgrade sc-extension on the cluster (helm upgrade), " +
		"or leave out --workload, --binding-mode, --no-restart and --unbind\n"
	for name, args := range map[string][]string{
		"create --workload":   append(append([]string{}, createArgs...), "--workload", "deployment/app"),
		"create all flags":    append(append([]string{}, createArgs...), "--workload", "deployment/app", "--binding-mode", "volume", "--no-restart"),
		"update --workload":   append(append([]string{}, update...), "--workload", "deployment/app"),
		"update --unbind":     append(append([]string{}, update...), "--unbind"),
		"update --no-restart": append(append([]string{}, update...), "--workload", "deployment/app", "--no-restart"),
	} {
		t.Run(name, func(t *testing.T) {
			plane := &countingPlane{fakePlane: &fakePlane{heartbeat: v010,
				answers: map[protocol.Verb]any{protocol.VerbShow: stored}}}
			r := runWith(t, plane, args...)
			assert.Equal(t, ExitUsage, r.code, r.stderr)
			assert.Equal(t, want, r.stderr)
			assert.Empty(t, r.stdout)
			assert.Equal(t, 1, plane.heartbeats)
			assert.Empty(t, plane.queries, "nothing asked")
			assert.Empty(t, plane.created, "nothing sent")
			assert.Empty(t, plane.updated)
			assert.True(t, plane.closed)
		})
	}

	// the same agent, without binding flags: the command runs (with the
	// release warning), so only what needs the feature is refused
	plane := &countingPlane{fakePlane: &fakePlane{heartbeat: v010, answers: map[protocol.Verb]any{protocol.VerbShow: stored}}}
	r := runWith(t, plane, update...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stderr, "scctl: warning:")
	require.Len(t, plane.updated, 1)
	assert.Nil(t, plane.updated[0].Binding)

	// an agent that does not speak sc.v1 at all is refused for that, first
	plane = &countingPlane{fakePlane: &fakePlane{heartbeat: heartbeatOf("v1.0.0", "sc.v2")}}
	r = runWith(t, plane, append(append([]string{}, createArgs...), "--workload", "deployment/app")...)
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "speaks sc.v2, not sc.v1")
	assert.NotContains(t, r.stderr, "bind")
}

func TestBindingFlagsReachAnAgentThatBinds(t *testing.T) {
	stampVersion(t, "v0.2.0")
	for name, tc := range map[string]struct {
		hb    protocol.Heartbeat
		hbErr error
	}{
		"advertises binding": {hb: bindingAgent()},
		"newer, sc.v2 heartbeat that still speaks sc.v1": {hb: func() protocol.Heartbeat {
			hb := heartbeatOf("v0.3.0", "sc.v2", "sc.v1")
			hb.Features = []string{"binding", "later"}
			return hb
		}()},
		"no heartbeat: nothing to compare": {hbErr: fmt.Errorf("cluster c1: no heartbeat")},
	} {
		t.Run(name, func(t *testing.T) {
			plane := &countingPlane{fakePlane: &fakePlane{heartbeat: tc.hb, heartbeatErr: tc.hbErr}}
			r := runWith(t, plane, append(append([]string{}, createArgs...), "--workload", "deployment/app,container=web")...)
			require.Equal(t, ExitOK, r.code, r.stderr)
			assert.False(t, strings.Contains(r.stderr, "does not bind"), r.stderr)
			require.Len(t, plane.created, 1)
			assert.Equal(t, &connection.Binding{Workloads: []connection.Workload{
				{Kind: connection.WorkloadDeployment, Name: "app", Containers: []string{"web"}}}}, plane.created[0].Binding)
		})
	}
}

func TestFlagForBindingFields(t *testing.T) {
	for field, want := range map[string]string{
		"binding":                            "--workload",
		"binding.mode":                       "--binding-mode",
		"binding.workloads":                  "--workload",
		"binding.workloads[0]":               "--workload #1",
		"binding.workloads[2].kind":          "--workload #3 kind",
		"binding.workloads[1].name":          "--workload #2 name",
		"binding.workloads[0].containers[4]": "--workload #1 container #5",
	} {
		assert.Equal(t, want, flagFor(field), field)
	}
}
