package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func sampleView() protocol.ConnectionView {
	return protocol.ConnectionView{
		Spec: connection.Spec{
			Name:          "My_Storage",
			Scope:         "team-a",
			TargetService: connection.TargetService{Type: catalog.TargetStorageBlob, ID: storageID},
			AuthInfo:      connection.AuthInfo{AuthType: catalog.AuthServicePrincipal, ClientID: clientID, TenantID: tenantID},
			ClientType:    catalog.ClientPython,
			Configurations: []connection.Configuration{
				{Name: "AZURE_STORAGEBLOB_RESOURCEENDPOINT", Value: "https://acct1.blob.core.windows.net/"},
				{Name: "AZURE_STORAGEBLOB_CLIENTID", Value: clientID},
				{Name: "AZURE_STORAGEBLOB_CLIENTSECRET", Credential: true},
				{Name: "AZURE_STORAGEBLOB_TENANTID", Value: tenantID},
			},
			CustomizedKeys: map[string]string{"AZURE_STORAGEBLOB_RESOURCEENDPOINT": "BLOB_URL"},
		},
		ObjectID:   "my-storage-1a2b3c4d5e",
		Generation: 3,
		Status: connection.Status{
			Phase: connection.PhaseSucceeded, ObservedGeneration: 3, LastRequestID: "req-7",
			Resources: []connection.ResourceRef{{Kind: "Secret", Namespace: "team-a", Name: "sc-my-storage-1a2b3c4d5e-secret"}},
			UpdatedAt: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
		},
	}
}

func sampleConfiguration() []protocol.ConfigurationItem {
	return []protocol.ConfigurationItem{
		{Name: "BLOB_URL", Value: "https://acct1.blob.core.windows.net/"},
		{Name: "AZURE_STORAGEBLOB_CLIENTSECRET", Value: "", Credential: true},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./pkg/cli -run Golden -update to create it")
	assert.Equal(t, string(want), string(got))
}

func TestGoldenOutputs(t *testing.T) {
	failing := sampleView()
	failing.Spec.Name = "db"
	failing.Deleting = true
	failing.Status = connection.Status{Phase: connection.PhaseFailed, Reason: "NamespaceNotFound"}
	for _, format := range []string{outputTable, outputJSON, outputYAML} {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			p := printer{w: &b, format: format}

			require.NoError(t, p.connection(sampleView()))
			golden(t, "show."+format, b.Bytes())

			b.Reset()
			require.NoError(t, p.connections([]protocol.ConnectionView{sampleView(), failing}))
			golden(t, "list."+format, b.Bytes())

			b.Reset()
			require.NoError(t, p.configuration(sampleConfiguration()))
			golden(t, "list-configuration."+format, b.Bytes())
		})
	}
}

// An empty list is [] for scripts, not null, and a header for people.
func TestEmptyList(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, printer{w: &b, format: outputJSON}.connections(nil))
	assert.Equal(t, "[]\n", b.String())
	b.Reset()
	require.NoError(t, printer{w: &b, format: outputTable}.connections(nil))
	assert.Equal(t, "NAME  NAMESPACE  TARGET  AUTH  CLIENT  PHASE  REASON  GEN  UPDATED\n", b.String())
}

func boundView() protocol.ConnectionView {
	v := sampleView()
	v.Spec.Binding = &connection.Binding{Mode: connection.BindingVolume, NoRestart: true, Workloads: []connection.Workload{
		{Kind: connection.WorkloadDeployment, Name: "app", Containers: []string{"web", "sidecar"}},
		{Kind: connection.WorkloadCronJob, Name: "nightly"},
	}}
	return v
}

// show prints the binding (table rows; JSON and YAML carry spec.binding as
// the agent sent it) and list-configuration the workloads each key reaches;
// the unbound goldens above stay byte for byte what they were.
func TestGoldenBoundOutputs(t *testing.T) {
	items := sampleConfiguration()
	for i := range items {
		items[i].Workloads, items[i].BindingMode = boundView().Spec.Binding.Workloads, connection.BindingVolume
	}
	for _, format := range []string{outputTable, outputJSON, outputYAML} {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			p := printer{w: &b, format: format}
			require.NoError(t, p.connection(boundView()))
			golden(t, "show-bound."+format, b.Bytes())

			b.Reset()
			require.NoError(t, p.configuration(items))
			golden(t, "list-configuration-bound."+format, b.Bytes())
		})
	}
}

func TestShowBindingDefaults(t *testing.T) {
	v := sampleView()
	v.Spec.Binding = &connection.Binding{Workloads: []connection.Workload{{Kind: connection.WorkloadStatefulSet, Name: "db"}}}
	var b bytes.Buffer
	require.NoError(t, printer{w: &b, format: outputTable}.connection(v))
	assert.Regexp(t, `(?m)^Binding mode:\s+env$`, b.String(), "the default mode is spelled out")
	assert.Regexp(t, `(?m)^Bound workloads:\s+StatefulSet/db$`, b.String())
	assert.Regexp(t, `(?m)^Restart:\s+on credential change$`, b.String())

	b.Reset()
	require.NoError(t, printer{w: &b, format: outputTable}.connection(sampleView()))
	assert.NotContains(t, b.String(), "Binding")
	assert.NotContains(t, b.String(), "Restart")
}
