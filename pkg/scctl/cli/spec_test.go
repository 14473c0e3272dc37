package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

const (
	sub        = "00000000-0000-0000-0000-000000000001"
	clientID   = "11111111-2222-3333-4444-555555555555"
	tenantID   = "99999999-8888-7777-6666-555555555555"
	storageID  = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/acct1"
	vaultID    = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1"
	postgresID = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg1/databases/db1"
)

// buildSpec parses args as create's flags and builds the spec.
func buildSpec(t *testing.T, target string, base *connection.Spec, args ...string) (connection.Spec, connection.Credentials, error) {
	t.Helper()
	var f specFlags
	fs := pflag.NewFlagSet("create", pflag.ContinueOnError)
	f.register(fs)
	require.NoError(t, fs.Parse(args))
	return f.build(target, base)
}

func configMap(s connection.Spec) map[string]string {
	m := map[string]string{}
	for _, c := range s.Configurations {
		m[c.Name] = c.Value
	}
	return m
}

func TestBuildSecretWithAlias(t *testing.T) {
	cs := "DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey=cred-VALUE-abc==;EndpointSuffix=core.windows.net"
	spec, creds, err := buildSpec(t, "storage-blob", nil,
		"--connection", "my_storage", "--kube-namespace", "team-a", "--target-id", storageID,
		"--secret", "connection-string="+cs)
	require.NoError(t, err)
	assert.Equal(t, catalog.AuthSecret, spec.AuthInfo.AuthType)
	assert.Equal(t, catalog.ClientNone, spec.ClientType)
	assert.Equal(t, "team-a", spec.Scope)
	assert.Equal(t, []connection.Configuration{{Name: "AZURE_STORAGEBLOB_CONNECTIONSTRING", Credential: true}}, spec.Configurations)
	assert.Equal(t, connection.Credentials{"AZURE_STORAGEBLOB_CONNECTIONSTRING": cs}, creds)
}

func TestBuildSecretFullKeyCommaInValueAndFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(file, []byte("cred-VALUE-from-file\n"), 0o600))
	spec, creds, err := buildSpec(t, "postgres-flexible", nil,
		"--connection", "db", "--target-id", postgresID, "--client-type", "nodejs",
		"--secret", "AZURE_POSTGRESQL_PASSWORD=@"+file,
		"--config", "AZURE_POSTGRESQL_USER=app,AZURE_POSTGRESQL_SSL=false", "--config", "EXTRA_OPTS=a,b")
	require.NoError(t, err)
	assert.Equal(t, "cred-VALUE-from-file", creds["AZURE_POSTGRESQL_PASSWORD"])
	cfg := configMap(spec)
	assert.Equal(t, "pg1.postgres.database.azure.com", cfg["AZURE_POSTGRESQL_HOST"], "derived from --target-id")
	assert.Equal(t, "db1", cfg["AZURE_POSTGRESQL_DATABASE"])
	assert.Equal(t, "app", cfg["AZURE_POSTGRESQL_USER"])
	assert.Equal(t, "false", cfg["AZURE_POSTGRESQL_SSL"], "--config overrides a derived value")
	assert.Equal(t, "a,b", cfg["EXTRA_OPTS"], "a comma not followed by KEY= stays in the value")
	// catalog order first, extra keys after
	assert.Equal(t, "EXTRA_OPTS", spec.Configurations[len(spec.Configurations)-1].Name)
	assert.Equal(t, "", cfg["AZURE_POSTGRESQL_PASSWORD"], "credential values never sit in the spec")
}

func TestBuildWorkloadIdentity(t *testing.T) {
	spec, creds, err := buildSpec(t, "storage-blob", nil,
		"--connection", "c", "--target-id", storageID,
		"--workload-identity", "client-id="+clientID+",tenant-id="+tenantID,
		"--customized-keys", "AZURE_STORAGEBLOB_RESOURCEENDPOINT=BLOB_URL")
	require.NoError(t, err)
	assert.Empty(t, creds)
	assert.Equal(t, connection.AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: clientID, TenantID: tenantID}, spec.AuthInfo)
	assert.Equal(t, map[string]string{
		"AZURE_STORAGEBLOB_RESOURCEENDPOINT": "https://acct1.blob.core.windows.net/",
		"AZURE_STORAGEBLOB_CLIENTID":         clientID,
	}, configMap(spec))
	assert.Equal(t, map[string]string{"AZURE_STORAGEBLOB_RESOURCEENDPOINT": "BLOB_URL"}, spec.CustomizedKeys)
}

func TestBuildServicePrincipal(t *testing.T) {
	spec, creds, err := buildSpec(t, "keyvault", nil,
		"--connection", "kv", "--target-id", vaultID,
		"--service-principal", "client-id="+clientID+",secret=cred-VALUE-sp,tenant-id="+tenantID)
	require.NoError(t, err)
	assert.Equal(t, connection.Credentials{"AZURE_KEYVAULT_CLIENTSECRET": "cred-VALUE-sp"}, creds)
	cfg := configMap(spec)
	assert.Equal(t, tenantID, cfg["AZURE_KEYVAULT_TENANTID"])
	assert.Equal(t, clientID, cfg["AZURE_KEYVAULT_CLIENTID"])
	assert.Equal(t, "https://kv1.vault.azure.net/", cfg["AZURE_KEYVAULT_RESOURCEENDPOINT"])
}

func TestBuildKeyvaultCSI(t *testing.T) {
	spec, creds, err := buildSpec(t, "keyvault", nil,
		"--connection", "kv", "--target-id", vaultID,
		"--keyvault-csi", "tenant-id="+tenantID+",client-id="+clientID+",objects=db-password;api-key")
	require.NoError(t, err)
	assert.Empty(t, creds)
	assert.Empty(t, spec.Configurations)
	assert.Equal(t, &connection.SecretStore{KeyVaultName: "kv1", TenantID: tenantID, UserAssignedID: clientID,
		Objects: []string{"db-password", "api-key"}}, spec.SecretStore)
}

func TestBuildUpdateKeepsWhatFlagsLeaveOut(t *testing.T) {
	base, _, err := buildSpec(t, "postgres-flexible", nil,
		"--connection", "db", "--kube-namespace", "team-a", "--target-id", postgresID, "--client-type", "nodejs",
		"--secret", "password=old", "--config", "AZURE_POSTGRESQL_USER=app,AZURE_POSTGRESQL_PORT=6432")
	require.NoError(t, err)

	spec, creds, err := buildSpec(t, "postgres-flexible", &base, "--connection", "db", "--secret", "password=cred-VALUE-new")
	require.NoError(t, err)
	assert.Equal(t, "team-a", spec.Scope)
	assert.Equal(t, catalog.ClientNodejs, spec.ClientType)
	assert.Equal(t, "app", configMap(spec)["AZURE_POSTGRESQL_USER"])
	assert.Equal(t, "6432", configMap(spec)["AZURE_POSTGRESQL_PORT"], "a stored override survives")
	assert.Equal(t, "cred-VALUE-new", creds["AZURE_POSTGRESQL_PASSWORD"])

	// Credential values never come back from the cluster: they must be given again.
	_, _, err = buildSpec(t, "postgres-flexible", &base, "--connection", "db")
	require.ErrorIs(t, err, ErrUsage)
	assert.Contains(t, err.Error(), "--secret: AZURE_POSTGRESQL_PASSWORD is required (or password=...)")

	_, _, err = buildSpec(t, "storage-blob", &base, "--connection", "db")
	require.ErrorIs(t, err, ErrUsage)
	assert.Contains(t, err.Error(), "is a postgres-flexible connection, not storage-blob")
}

// Every mistake is a usage error whose message names the flag to fix.
func TestBuildUsageErrorsNameTheFlag(t *testing.T) {
	base := []string{"--connection", "c", "--target-id", storageID}
	cases := []struct {
		name   string
		target string
		args   []string
		want   string
	}{
		{"unknown target", "storage-blobz", append(base, "--secret", "connection-string=x"), "<target>: unknown target type \"storage-blobz\""},
		{"no connection", "storage-blob", []string{"--target-id", storageID, "--secret", "connection-string=x"}, "--connection is required"},
		{"no target id", "storage-blob", []string{"--connection", "c", "--secret", "connection-string=x"}, "--target-id is required"},
		{"bad target id", "storage-blob", []string{"--connection", "c", "--target-id", vaultID, "--secret", "connection-string=x"}, "--target-id: invalid target resource id"},
		{"no auth", "storage-blob", base, "an auth type is required"},
		{"two auths", "storage-blob", append(base, "--workload-identity", "client-id="+clientID, "--service-principal", "client-id=x"), "--workload-identity and --service-principal are alternatives"},
		{"unsupported auth", "storage-file", append(base, "--workload-identity", "client-id="+clientID), "storage-file does not support auth type \"workloadIdentity\"; supported: secret"},
		{"unsupported client", "storage-blob", append(base, "--secret", "connection-string=x", "--client-type", "ruby"), "does not support client type \"ruby\""},
		{"unknown client", "storage-blob", append(base, "--secret", "connection-string=x", "--client-type", "cobol"), "--client-type: unknown client type"},
		{"missing client id", "storage-blob", append(base, "--workload-identity", "tenant-id="+tenantID), "--workload-identity: client-id is required"},
		{"bad client id", "storage-blob", append(base, "--workload-identity", "client-id=nope"), "client-id (--workload-identity/--service-principal): must be a GUID"},
		{"unknown sub-option", "storage-blob", append(base, "--workload-identity", "client-id="+clientID+",tennant-id=x"), "--workload-identity: unknown option \"tennant-id\""},
		{"sp without secret", "keyvault", []string{"--connection", "c", "--target-id", vaultID, "--service-principal", "client-id=" + clientID + ",tenant-id=" + tenantID}, "--service-principal: secret is required"},
		{"missing secret", "storage-blob", append(base, "--secret", "AZURE_STORAGEBLOB_X=1"), "--secret: \"AZURE_STORAGEBLOB_X\" is not a credential key of this connection (credential keys: AZURE_STORAGEBLOB_CONNECTIONSTRING); non-credential values go in --config"},
		{"secret not KEY=VALUE", "storage-blob", append(base, "--secret", "justavalue"), "--secret: \"ju********\" is not KEY=VALUE"},
		{"credential in --config", "storage-blob", append(base, "--secret", "connection-string=x", "--config", "AZURE_STORAGEBLOB_CONNECTIONSTRING=y"), "--config: AZURE_STORAGEBLOB_CONNECTIONSTRING is a credential; pass it with --secret"},
		{"underivable key", "postgres-flexible", []string{"--connection", "c", "--target-id", postgresID, "--client-type", "nodejs", "--secret", "password=x"}, "--config: AZURE_POSTGRESQL_USER has no value"},
		{"bad name", "storage-blob", []string{"--connection", "my-conn", "--target-id", storageID, "--secret", "connection-string=x"}, "--connection: may contain only letters"},
		{"bad namespace", "storage-blob", append(base, "--kube-namespace", "Team_A", "--secret", "connection-string=x"), "--kube-namespace: must be a Kubernetes namespace name"},
		{"customized unknown key", "storage-blob", append(base, "--secret", "connection-string=x", "--customized-keys", "NOPE=X"), "--customized-keys NOPE: is not one of the connection's configuration keys"},
		{"unreadable file", "storage-blob", append(base, "--secret", "connection-string=@/nonexistent/file"), "--secret connection-string: cannot read /nonexistent/file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := buildSpec(t, tc.target, nil, tc.args...)
			require.Error(t, err)
			app := &App{}
			assert.Equal(t, ExitUsage, app.exitCode(err), "%v", err)
			assert.Contains(t, app.message(err, &globals{cluster: "c1"}), tc.want)
		})
	}
}

// A mistyped secret is masked in the error: it may be the secret itself.
func TestMalformedSecretNotEchoed(t *testing.T) {
	_, _, err := buildSpec(t, "storage-blob", nil, "--connection", "c", "--target-id", storageID,
		"--secret", "cred-VALUE-typo-no-equals")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "VALUE-typo")
}

func TestParseKVs(t *testing.T) {
	got, err := parseKVs("--x", []string{"A=1,B=x=y,z", "C=", "spring.a-b=Endpoint=sb://h/;Key=k,1"})
	require.NoError(t, err)
	assert.Equal(t, []kvPair{{"A", "1"}, {"B", "x=y,z"}, {"C", ""}, {"spring.a-b", "Endpoint=sb://h/;Key=k,1"}}, got)
	_, err = parseKVs("--x", []string{",A=1"})
	assert.True(t, errors.Is(err, ErrUsage))
	assert.True(t, strings.HasPrefix(err.Error(), "--x: "))
}
