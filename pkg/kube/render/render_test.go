package render

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const (
	clientID = "00000000-0000-4000-8000-0000000000AB"
	tenantID = "11111111-1111-4111-8111-111111111111"
	credVal  = "cred-VALUE-render-4f2a"
)

func secretConn() (connection.Connection, connection.Credentials) {
	return connection.Connection{
		Generation: 3,
		Spec: connection.Spec{
			Name:          "My_Blob",
			Scope:         "team-a",
			TargetService: connection.TargetService{Type: catalog.TargetStorageBlob, ID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"},
			AuthInfo:      connection.AuthInfo{AuthType: catalog.AuthSecret},
			ClientType:    catalog.ClientPython,
			Configurations: []connection.Configuration{
				{Name: "AZURE_STORAGEBLOB_CONNECTIONSTRING", Credential: true},
			},
			CustomizedKeys: map[string]string{"AZURE_STORAGEBLOB_CONNECTIONSTRING": "BLOB_CS"},
			Labels:         map[string]string{"team": "a"},
			Annotations:    map[string]string{"owner": "alice"},
		},
	}, connection.Credentials{"AZURE_STORAGEBLOB_CONNECTIONSTRING": credVal}
}

func workloadIdentityConn() connection.Connection {
	return connection.Connection{Generation: 1, Spec: connection.Spec{
		Name:          "kv1",
		Scope:         "team-a",
		TargetService: connection.TargetService{Type: catalog.TargetKeyVault, ID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v"},
		AuthInfo:      connection.AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: clientID, TenantID: tenantID},
		Configurations: []connection.Configuration{
			{Name: "AZURE_KEYVAULT_RESOURCEENDPOINT", Value: "https://v.vault.azure.net/"},
			{Name: "AZURE_KEYVAULT_SCOPE", Value: "https://vault.azure.net/.default"},
			{Name: "AZURE_KEYVAULT_CLIENTID", Value: clientID},
		},
	}}
}

func servicePrincipalConn() (connection.Connection, connection.Credentials) {
	return connection.Connection{Generation: 2, Spec: connection.Spec{
			Name:          "sb1",
			Scope:         "default",
			TargetService: connection.TargetService{Type: catalog.TargetServiceBus, ID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ServiceBus/namespaces/n"},
			AuthInfo:      connection.AuthInfo{AuthType: catalog.AuthServicePrincipal, ClientID: clientID, TenantID: tenantID},
			Configurations: []connection.Configuration{
				{Name: "AZURE_SERVICEBUS_FULLYQUALIFIEDNAMESPACE", Value: "n.servicebus.windows.net"},
				{Name: "AZURE_SERVICEBUS_CLIENTID", Value: clientID},
				{Name: "AZURE_SERVICEBUS_CLIENTSECRET", Credential: true},
				{Name: "AZURE_SERVICEBUS_TENANTID", Value: tenantID},
			},
		}},
		connection.Credentials{"AZURE_SERVICEBUS_CLIENTSECRET": credVal}
}

func csiConn() connection.Connection {
	return connection.Connection{Generation: 1, Spec: connection.Spec{
		Name:          "kvcsi",
		Scope:         "team-b",
		TargetService: connection.TargetService{Type: catalog.TargetKeyVault, ID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v"},
		AuthInfo:      connection.AuthInfo{AuthType: catalog.AuthKeyvaultCSI, ClientID: clientID},
		SecretStore:   &connection.SecretStore{KeyVaultName: "v", TenantID: tenantID, Objects: []string{"db-password", "cert/tls"}},
		Labels:        map[string]string{"team": "b"},
	}}
}

// golden compares the YAML of objs with testdata/<name>.golden. The golden
// files are the review surface of what lands in a user's namespace.
func golden(t *testing.T, name string, objs Objects) {
	t.Helper()
	var docs []string
	var items []any
	if objs.Secret != nil {
		items = append(items, objs.Secret)
	}
	if objs.ServiceAccount != nil {
		items = append(items, objs.ServiceAccount)
	}
	if objs.SecretProviderClass != nil {
		items = append(items, objs.SecretProviderClass.Object)
	}
	for _, o := range items {
		b, err := yaml.Marshal(o)
		require.NoError(t, err)
		docs = append(docs, string(b))
	}
	got := strings.Join(docs, "---\n")
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./pkg/render -update to create %s", path)
	assert.Equal(t, string(want), got)
}

func TestRenderGolden(t *testing.T) {
	sc, screds := secretConn()
	sp, spcreds := servicePrincipalConn()
	tests := []struct {
		name  string
		conn  connection.Connection
		creds connection.Credentials
	}{
		{"secret", sc, screds},
		{"workload-identity", workloadIdentityConn(), nil},
		{"service-principal", sp, spcreds},
		{"keyvault-csi", csiConn(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Render(tt.conn, tt.creds)
			require.NoError(t, err)
			golden(t, tt.name, objs)
		})
	}
}

func TestRenderSecretKeysAndHash(t *testing.T) {
	c, creds := secretConn()
	objs, err := Render(c, creds)
	require.NoError(t, err)
	require.NotNil(t, objs.Secret)
	assert.Nil(t, objs.ServiceAccount)
	assert.Nil(t, objs.SecretProviderClass)
	s := objs.Secret
	assert.Equal(t, "team-a", s.Namespace)
	assert.Equal(t, connection.SecretName(c.Spec.ID()), s.Name)
	assert.Equal(t, map[string][]byte{"BLOB_CS": []byte(credVal)}, s.Data, "customizedKeys rename, the value comes from creds")
	assert.Equal(t, DataHash(s.Data), s.Annotations[AnnotationDataHash])
	assert.Equal(t, ManagedByValue, s.Labels[LabelManagedBy])
	assert.Equal(t, c.Spec.ID(), s.Labels[LabelConnection])
	assert.Equal(t, "a", s.Labels["team"])
	assert.Equal(t, "alice", s.Annotations["owner"])
	for k, v := range s.Annotations {
		assert.NotContains(t, k+v, credVal)
	}

	// a changed credential changes the hash: what no-op detection relies on
	creds["AZURE_STORAGEBLOB_CONNECTIONSTRING"] = credVal + "-rotated"
	again, err := Render(c, creds)
	require.NoError(t, err)
	assert.NotEqual(t, s.Annotations[AnnotationDataHash], again.Secret.Annotations[AnnotationDataHash])
}

func TestVolumeModeSecretCarriesServiceBindingEntries(t *testing.T) {
	c, creds := secretConn()
	plain, err := Render(c, creds)
	require.NoError(t, err)

	c.Spec.Binding = &connection.Binding{Mode: connection.BindingVolume, Workloads: []connection.Workload{{Kind: connection.WorkloadDeployment, Name: "web"}}}
	objs, err := Render(c, creds)
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"BLOB_CS": []byte(credVal), "type": []byte("storage-blob"), "provider": []byte("azure")}, objs.Secret.Data)
	assert.Equal(t, DataHash(objs.Secret.Data), objs.Secret.Annotations[AnnotationDataHash], "the entries are data like any other")
	assert.NotEqual(t, plain.Secret.Annotations[AnnotationDataHash], objs.Secret.Annotations[AnnotationDataHash])

	c.Spec.Binding.Mode = connection.BindingEnv
	env, err := Render(c, creds)
	require.NoError(t, err)
	assert.Equal(t, plain.Secret.Data, env.Secret.Data, "env mode: no servicebinding.io entries")

	// keys of the spec's own named type or provider win
	c.Spec.Binding.Mode = connection.BindingVolume
	c.Spec.Configurations = append(c.Spec.Configurations, connection.Configuration{Name: "KIND", Value: "blob"}, connection.Configuration{Name: "provider", Value: "me"})
	c.Spec.CustomizedKeys["KIND"] = "type"
	own, err := Render(c, creds)
	require.NoError(t, err)
	assert.Equal(t, "blob", string(own.Secret.Data["type"]))
	assert.Equal(t, "me", string(own.Secret.Data["provider"]))
}

func TestBindingTypeIsTheLowercasedCatalogName(t *testing.T) {
	assert.Equal(t, "storage-blob", BindingType(catalog.TargetStorageBlob))
	assert.Equal(t, "keyvault", BindingType(catalog.TargetKeyVault))
	assert.Equal(t, "postgres-flexible", BindingType("Postgres-Flexible"))
}

func TestRenderMissingCredentialNamesKeyOnly(t *testing.T) {
	c, _ := secretConn()
	_, err := Render(c, connection.Credentials{"OTHER": credVal})
	require.ErrorIs(t, err, ErrMissingCredential)
	assert.Contains(t, err.Error(), "AZURE_STORAGEBLOB_CONNECTIONSTRING")
	assert.NotContains(t, err.Error(), credVal)
}

func TestRenderUserCannotOverrideOwnership(t *testing.T) {
	c, creds := secretConn()
	// Validation refuses these; rendering must still not let them win.
	c.Spec.Labels = map[string]string{LabelManagedBy: "someone-else", LabelConnection: "other"}
	c.Spec.Annotations = map[string]string{AnnotationDataHash: "sha256:forged"}
	objs, err := Render(c, creds)
	require.NoError(t, err)
	assert.Equal(t, ManagedByValue, objs.Secret.Labels[LabelManagedBy])
	assert.Equal(t, c.Spec.ID(), objs.Secret.Labels[LabelConnection])
	assert.Equal(t, DataHash(objs.Secret.Data), objs.Secret.Annotations[AnnotationDataHash])
}

func TestRenderWorkloadIdentityServiceAccount(t *testing.T) {
	objs, err := Render(workloadIdentityConn(), nil)
	require.NoError(t, err)
	sa := objs.ServiceAccount
	require.NotNil(t, sa)
	assert.Equal(t, "sc-account-00000000-0000-4000-8000-0000000000ab", sa.Name)
	assert.Equal(t, clientID, sa.Annotations[AnnotationWIClientID])
	assert.Equal(t, tenantID, sa.Annotations[AnnotationWITenantID])
	assert.Equal(t, "true", sa.Labels[LabelWIUse])
	assert.NotContains(t, sa.Labels, LabelConnection, "shared: no single connection owns it")
	assert.Equal(t, ServiceAccountHash(sa), sa.Annotations[AnnotationDataHash])

	noTenant := workloadIdentityConn()
	noTenant.Spec.AuthInfo.TenantID = ""
	objs, err = Render(noTenant, nil)
	require.NoError(t, err)
	assert.NotContains(t, objs.ServiceAccount.Annotations, AnnotationWITenantID)

	noClient := workloadIdentityConn()
	noClient.Spec.AuthInfo.ClientID = ""
	_, err = Render(noClient, nil)
	assert.ErrorIs(t, err, ErrIncomplete)
}

func TestRenderSecretProviderClass(t *testing.T) {
	objs, err := Render(csiConn(), nil)
	require.NoError(t, err)
	assert.Nil(t, objs.Secret, "keyvaultCsi renders no Secret")
	u := objs.SecretProviderClass
	require.NotNil(t, u)
	assert.Equal(t, "secrets-store.csi.x-k8s.io/v1", u.GetAPIVersion())
	params := u.Object["spec"].(map[string]any)["parameters"].(map[string]any)
	assert.Equal(t, "false", params["usePodIdentity"])
	assert.Equal(t, "v", params["keyvaultName"])
	assert.Equal(t, tenantID, params["tenantId"])
	assert.Equal(t, clientID, params["clientID"])
	assert.Equal(t, SecretProviderClassHash(u), u.GetAnnotations()[AnnotationDataHash])

	vm := csiConn()
	vm.Spec.AuthInfo.ClientID = ""
	vm.Spec.SecretStore.UserAssignedID = "22222222-2222-4222-8222-222222222222"
	objs, err = Render(vm, nil)
	require.NoError(t, err)
	params = objs.SecretProviderClass.Object["spec"].(map[string]any)["parameters"].(map[string]any)
	assert.Equal(t, "22222222-2222-4222-8222-222222222222", params["userAssignedIdentityID"])
	assert.NotContains(t, params, "clientID")

	bad := csiConn()
	bad.Spec.SecretStore.Objects = []string{"ok\n    objectType: key"}
	_, err = Render(bad, nil)
	assert.ErrorIs(t, err, ErrIncomplete, "object names are spliced into YAML and must not inject")

	none := csiConn()
	none.Spec.SecretStore = nil
	_, err = Render(none, nil)
	assert.ErrorIs(t, err, ErrIncomplete)
}

func TestRefsMatchRender(t *testing.T) {
	sc, screds := secretConn()
	for _, c := range []struct {
		conn  connection.Connection
		creds connection.Credentials
	}{{sc, screds}, {workloadIdentityConn(), nil}, {csiConn(), nil}} {
		objs, err := Render(c.conn, c.creds)
		require.NoError(t, err)
		assert.Equal(t, objs.Refs(), Refs(c.conn.Spec), c.conn.Spec.Name)
	}
}

func TestDataHashIsUnambiguous(t *testing.T) {
	a := DataHash(map[string][]byte{"ab": []byte("c")})
	b := DataHash(map[string][]byte{"a": []byte("bc")})
	assert.NotEqual(t, a, b)
	assert.Equal(t, a, DataHash(map[string][]byte{"ab": []byte("c")}))
	assert.True(t, strings.HasPrefix(a, "sha256:"))
}

func FuzzRender(f *testing.F) {
	f.Add("My_Conn", "team-a", "secret", "AZURE_X_PASSWORD", "AZURE_X_HOST", "h", "NEW", credVal, "", "obj")
	f.Add("wi", "ns", "workloadIdentity", "AZURE_X_CLIENTID", "AZURE_X_CLIENTID", "", "", "", clientID, "")
	f.Add("csi", "ns", "keyvaultCsi", "", "", "", "", "", "", "a/b\nc")
	f.Fuzz(func(t *testing.T, name, ns, auth, credKey, plainKey, plainVal, renamed, cred, client, object string) {
		spec := connection.Spec{
			Name: name, Scope: ns,
			AuthInfo: connection.AuthInfo{AuthType: catalog.AuthType(auth), ClientID: client},
			Configurations: []connection.Configuration{
				{Name: credKey, Credential: true},
				{Name: plainKey, Value: plainVal},
			},
			CustomizedKeys: map[string]string{plainKey: renamed},
			SecretStore:    &connection.SecretStore{KeyVaultName: "kv", Objects: []string{object}},
		}
		c := connection.Connection{Spec: spec}
		creds := connection.Credentials{credKey: cred}
		objs, err := Render(c, creds)
		if err != nil {
			require.True(t, errors.Is(err, ErrMissingCredential) || errors.Is(err, ErrIncomplete), err.Error())
			if len(cred) > 3 {
				require.NotContains(t, err.Error(), cred)
			}
			return
		}
		again, err := Render(c, creds)
		require.NoError(t, err)
		require.Equal(t, objs, again, "deterministic")
		if s := objs.Secret; s != nil {
			require.Equal(t, DataHash(s.Data), s.Annotations[AnnotationDataHash])
			if len(cred) > 3 {
				for k, v := range s.Annotations {
					if k != AnnotationDataHash {
						require.NotContains(t, v, cred)
					}
				}
			}
		}
		if u := objs.SecretProviderClass; u != nil {
			require.Equal(t, SecretProviderClassHash(u), u.GetAnnotations()[AnnotationDataHash])
			params := u.Object["spec"].(map[string]any)["parameters"].(map[string]any)
			require.NotContains(t, params["objects"], "\n    objectType: key\n  - |\n    objectName: x", "no injected entries")
		}
		require.Equal(t, objs.Refs(), Refs(spec))
	})
}
