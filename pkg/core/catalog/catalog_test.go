package catalog

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func names(keys []Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Name
	}
	return out
}

// TestKeysPerRow pins the exact ordered keys of PRODUCT.md section 4, row by row.
func TestKeysPerRow(t *testing.T) {
	const (
		S  = AuthSecret
		WI = AuthWorkloadIdentity
		SP = AuthServicePrincipal
	)
	cases := []struct {
		t    TargetType
		a    AuthType
		c    ClientType
		want []string
	}{
		{TargetStorageBlob, S, ClientNone, []string{"AZURE_STORAGEBLOB_CONNECTIONSTRING"}},
		{TargetStorageBlob, WI, ClientPython, []string{"AZURE_STORAGEBLOB_RESOURCEENDPOINT", "AZURE_STORAGEBLOB_CLIENTID"}},
		{TargetStorageBlob, SP, ClientDotnet, []string{"AZURE_STORAGEBLOB_RESOURCEENDPOINT", "AZURE_STORAGEBLOB_CLIENTID", "AZURE_STORAGEBLOB_CLIENTSECRET", "AZURE_STORAGEBLOB_TENANTID"}},
		{TargetStorageQueue, WI, ClientJava, []string{"AZURE_STORAGEQUEUE_RESOURCEENDPOINT", "AZURE_STORAGEQUEUE_CLIENTID"}},
		{TargetStorageTable, S, ClientGo, []string{"AZURE_STORAGETABLE_CONNECTIONSTRING"}},
		{TargetStorageFile, S, ClientNone, []string{"AZURE_STORAGEFILE_CONNECTIONSTRING"}},
		{TargetKeyVault, WI, ClientNone, []string{"AZURE_KEYVAULT_RESOURCEENDPOINT", "AZURE_KEYVAULT_SCOPE", "AZURE_KEYVAULT_CLIENTID"}},
		{TargetKeyVault, SP, ClientNone, []string{"AZURE_KEYVAULT_RESOURCEENDPOINT", "AZURE_KEYVAULT_SCOPE", "AZURE_KEYVAULT_CLIENTID", "AZURE_KEYVAULT_CLIENTSECRET", "AZURE_KEYVAULT_TENANTID"}},
		{TargetKeyVault, AuthKeyvaultCSI, ClientNone, []string{}},
		{TargetCosmosSQL, S, ClientNone, []string{"AZURE_COSMOS_CONNECTIONSTRING"}},
		{TargetCosmosMongo, WI, ClientNodejs, []string{"AZURE_COSMOS_LISTCONNECTIONSTRINGURL", "AZURE_COSMOS_SCOPE", "AZURE_COSMOS_RESOURCEENDPOINT", "AZURE_COSMOS_CLIENTID"}},
		{TargetCosmosTable, S, ClientJava, []string{"AZURE_COSMOS_CONNECTIONSTRING"}},
		{TargetCosmosCassandra, S, ClientNone, []string{"AZURE_COSMOS_CONTACTPOINT", "AZURE_COSMOS_PORT", "AZURE_COSMOS_KEYSPACE", "AZURE_COSMOS_USERNAME", "AZURE_COSMOS_PASSWORD"}},
		{TargetCosmosCassandra, WI, ClientNone, []string{"AZURE_COSMOS_CONTACTPOINT", "AZURE_COSMOS_PORT", "AZURE_COSMOS_KEYSPACE", "AZURE_COSMOS_USERNAME", "AZURE_COSMOS_LISTKEYURL", "AZURE_COSMOS_SCOPE", "AZURE_COSMOS_RESOURCEENDPOINT", "AZURE_COSMOS_CLIENTID"}},
		{TargetSQL, S, ClientDotnet, []string{"AZURE_SQL_CONNECTIONSTRING"}},
		{TargetSQL, S, ClientGo, []string{"AZURE_SQL_CONNECTIONSTRING"}},
		{TargetSQL, S, ClientPython, []string{"AZURE_SQL_SERVER", "AZURE_SQL_PORT", "AZURE_SQL_DATABASE", "AZURE_SQL_USER", "AZURE_SQL_PASSWORD"}},
		{TargetSQL, WI, ClientJava, []string{"AZURE_SQL_CONNECTIONSTRING", "AZURE_SQL_AUTHENTICATION", "AZURE_SQL_CLIENTID"}},
		{TargetSQL, WI, ClientPython, []string{"AZURE_SQL_SERVER", "AZURE_SQL_PORT", "AZURE_SQL_DATABASE", "AZURE_SQL_USER", "AZURE_SQL_AUTHENTICATION", "AZURE_SQL_CLIENTID"}},
		{TargetPostgresFlexible, S, ClientPython, []string{"AZURE_POSTGRESQL_CONNECTIONSTRING"}},
		{TargetPostgresFlexible, S, ClientNodejs, []string{"AZURE_POSTGRESQL_HOST", "AZURE_POSTGRESQL_USER", "AZURE_POSTGRESQL_PASSWORD", "AZURE_POSTGRESQL_DATABASE", "AZURE_POSTGRESQL_PORT", "AZURE_POSTGRESQL_SSL"}},
		{TargetPostgresFlexible, WI, ClientNodejs, []string{"AZURE_POSTGRESQL_HOST", "AZURE_POSTGRESQL_USER", "AZURE_POSTGRESQL_DATABASE", "AZURE_POSTGRESQL_PORT", "AZURE_POSTGRESQL_SSL", "AZURE_POSTGRESQL_CLIENTID"}},
		{TargetPostgresFlexible, WI, ClientDotnet, []string{"AZURE_POSTGRESQL_CONNECTIONSTRING", "AZURE_POSTGRESQL_CLIENTID"}},
		{TargetMySQLFlexible, S, ClientJava, []string{"AZURE_MYSQL_CONNECTIONSTRING"}},
		{TargetMySQLFlexible, S, ClientPython, []string{"AZURE_MYSQL_HOST", "AZURE_MYSQL_NAME", "AZURE_MYSQL_USER", "AZURE_MYSQL_PASSWORD"}},
		{TargetMySQLFlexible, WI, ClientPython, []string{"AZURE_MYSQL_HOST", "AZURE_MYSQL_NAME", "AZURE_MYSQL_USER", "AZURE_MYSQL_CLIENTID"}},
		{TargetRedis, S, ClientNone, []string{"AZURE_REDIS_HOST", "AZURE_REDIS_PORT", "AZURE_REDIS_DATABASE", "AZURE_REDIS_PASSWORD", "AZURE_REDIS_SSL"}},
		{TargetRedis, S, ClientPython, []string{"AZURE_REDIS_CONNECTIONSTRING"}},
		{TargetServiceBus, S, ClientNone, []string{"AZURE_SERVICEBUS_CONNECTIONSTRING"}},
		{TargetServiceBus, WI, ClientNone, []string{"AZURE_SERVICEBUS_FULLYQUALIFIEDNAMESPACE", "AZURE_SERVICEBUS_CLIENTID"}},
		{TargetEventHub, SP, ClientNone, []string{"AZURE_EVENTHUB_FULLYQUALIFIEDNAMESPACE", "AZURE_EVENTHUB_CLIENTID", "AZURE_EVENTHUB_CLIENTSECRET", "AZURE_EVENTHUB_TENANTID"}},
		{TargetAppConfig, S, ClientNone, []string{"AZURE_APPCONFIGURATION_CONNECTIONSTRING"}},
		{TargetAppConfig, WI, ClientNone, []string{"AZURE_APPCONFIGURATION_ENDPOINT", "AZURE_APPCONFIGURATION_CLIENTID"}},
		{TargetCognitiveServices, S, ClientPython, []string{"AZURE_OPENAI_BASE", "AZURE_OPENAI_KEY"}},
		{TargetCognitiveServices, WI, ClientPython, []string{"AZURE_OPENAI_BASE", "AZURE_OPENAI_CLIENTID"}},
		{TargetSignalR, S, ClientDotnet, []string{"AZURE_SIGNALR_CONNECTIONSTRING"}},
		{TargetSignalR, WI, ClientDotnet, []string{"AZURE_SIGNALR_HOST", "AZURE_SIGNALR_CLIENTID"}},
		{TargetWebPubSub, S, ClientNone, []string{"AZURE_WEBPUBSUB_CONNECTIONSTRING"}},
		{TargetWebPubSub, WI, ClientNone, []string{"AZURE_WEBPUBSUB_HOST", "AZURE_WEBPUBSUB_CLIENTID"}},
		{TargetStorageBlob, S, ClientSpringBoot, []string{
			"spring.cloud.azure.storage.blob.account-name", "spring.cloud.azure.storage.blob.account-key", "spring.cloud.azure.storage.blob.endpoint"}},
		{TargetKeyVault, SP, ClientSpringBoot, []string{
			"spring.cloud.azure.keyvault.secret.endpoint", "spring.cloud.azure.keyvault.secret.credential.client-id",
			"spring.cloud.azure.keyvault.secret.credential.client-secret", "spring.cloud.azure.keyvault.secret.profile.tenant-id"}},
	}
	for _, tc := range cases {
		t.Run(string(tc.t)+"/"+string(tc.a)+"/"+string(tc.c), func(t *testing.T) {
			keys, err := Keys(tc.t, tc.a, tc.c)
			require.NoError(t, err)
			assert.Equal(t, tc.want, names(keys))
		})
	}
}

func TestKeysCredentialFlags(t *testing.T) {
	keys, err := Keys(TargetPostgresFlexible, AuthSecret, ClientNodejs)
	require.NoError(t, err)
	var creds []string
	for _, k := range keys {
		if k.Credential {
			creds = append(creds, k.Name)
		}
	}
	assert.Equal(t, []string{"AZURE_POSTGRESQL_PASSWORD"}, creds)
}

func TestKeysEmptyClientMeansNone(t *testing.T) {
	a, err := Keys(TargetRedis, AuthSecret, "")
	require.NoError(t, err)
	b, err := Keys(TargetRedis, AuthSecret, ClientNone)
	require.NoError(t, err)
	assert.Equal(t, b, a)
}

func TestKeysUnsupported(t *testing.T) {
	cases := []struct {
		t    TargetType
		a    AuthType
		c    ClientType
		want string
	}{
		{TargetKeyVault, AuthSecret, ClientNone, `keyvault does not support auth type "secret"; supported: workloadIdentity, servicePrincipalSecret, keyvaultCsi`},
		{TargetStorageFile, AuthWorkloadIdentity, ClientNone, `storage-file does not support auth type "workloadIdentity"; supported: secret`},
		{TargetRedis, AuthServicePrincipal, ClientNone, `redis does not support auth type "servicePrincipalSecret"; supported: secret`},
		{TargetStorageBlob, AuthKeyvaultCSI, ClientNone, `storage-blob does not support auth type "keyvaultCsi"; supported: secret, workloadIdentity, servicePrincipalSecret`},
		{TargetSQL, AuthSecret, ClientNone, `sql with auth type "secret" does not support client type "none"; supported: dotnet, java, python, go`},
		{TargetRedis, AuthSecret, ClientSpringBoot, `redis with auth type "secret" does not support client type "springBoot"; supported: none, dotnet, java, python, go, nodejs`},
		{TargetKeyVault, AuthKeyvaultCSI, ClientSpringBoot, `keyvault with auth type "keyvaultCsi" does not support client type "springBoot"; supported: none, dotnet, java, python, go, nodejs`},
		{TargetStorageBlob, AuthSecret, ClientPHP, `storage-blob with auth type "secret" does not support client type "php"; supported: none, dotnet, java, python, go, nodejs, springBoot`},
		{"blob", AuthSecret, ClientNone, `unknown target type "blob"; valid: storage-blob, storage-queue, storage-table, storage-file, keyvault, cosmos-sql, cosmos-mongo, cosmos-table, cosmos-cassandra, sql, postgres-flexible, mysql-flexible, redis, servicebus, eventhub, appconfig, cognitiveservices, signalr, webpubsub`},
		{TargetStorageBlob, "msi", ClientNone, `storage-blob does not support auth type "msi"; supported: secret, workloadIdentity, servicePrincipalSecret`},
		{TargetStorageBlob, AuthSecret, "cobol", `storage-blob with auth type "secret" does not support client type "cobol"; supported: none, dotnet, java, python, go, nodejs, springBoot`},
	}
	for _, tc := range cases {
		t.Run(string(tc.t)+"/"+string(tc.a)+"/"+string(tc.c), func(t *testing.T) {
			keys, err := Keys(tc.t, tc.a, tc.c)
			require.Error(t, err)
			assert.Nil(t, keys)
			assert.True(t, errors.Is(err, ErrUnsupported))
			assert.Equal(t, tc.want, err.Error())
		})
	}
}

func TestParse(t *testing.T) {
	tt, err := ParseTarget("postgres-flexible")
	require.NoError(t, err)
	assert.Equal(t, TargetPostgresFlexible, tt)
	a, err := ParseAuth("servicePrincipalSecret")
	require.NoError(t, err)
	assert.Equal(t, AuthServicePrincipal, a)
	c, err := ParseClient("")
	require.NoError(t, err)
	assert.Equal(t, ClientNone, c)
	c, err = ParseClient("springBoot")
	require.NoError(t, err)
	assert.Equal(t, ClientSpringBoot, c)

	_, err = ParseTarget("Storage-Blob") // wire names are exact
	assert.ErrorContains(t, err, `unknown target type "Storage-Blob"; valid: storage-blob, storage-queue,`)
	assert.ErrorContains(t, err, "webpubsub")
	_, err = ParseAuth("connectionString")
	assert.EqualError(t, err, `unknown auth type "connectionString"; valid: secret, workloadIdentity, servicePrincipalSecret, keyvaultCsi`)
	_, err = ParseClient("csharp")
	assert.EqualError(t, err, `unknown client type "csharp"; valid: none, dotnet, java, python, go, nodejs, php, ruby, django, springBoot, kafka-springBoot`)
}

func TestPrefix(t *testing.T) {
	assert.Equal(t, "AZURE_STORAGEBLOB", Prefix(TargetStorageBlob))
	assert.Equal(t, "AZURE_OPENAI", Prefix(TargetCognitiveServices))
	assert.Equal(t, "AZURE_POSTGRESQL", Prefix(TargetPostgresFlexible))
	assert.Equal(t, "AZURE_APPCONFIGURATION", Prefix(TargetAppConfig))
	assert.Equal(t, "", Prefix("nope"))
}

// forEachCombination walks every advertised combination of SupportTable.
func forEachCombination(t *testing.T, f func(t *testing.T, tt TargetType, a AuthType, c ClientType)) {
	for _, row := range SupportTable() {
		for _, a := range row.AuthTypes {
			for _, c := range ClientTypes(row.Target, a) {
				t.Run(string(row.Target)+"/"+string(a)+"/"+string(c), func(t *testing.T) { f(t, row.Target, a, c) })
			}
		}
	}
}

// TestCatalogInvariants holds for every combination the support table advertises.
func TestCatalogInvariants(t *testing.T) {
	forEachCombination(t, func(t *testing.T, tt TargetType, a AuthType, c ClientType) {
		keys, err := Keys(tt, a, c)
		require.NoError(t, err)
		require.NotNil(t, keys)
		if a == AuthKeyvaultCSI {
			assert.Empty(t, keys, "keyvaultCsi renders a SecretProviderClass, not Secret keys")
			return
		}
		require.NotEmpty(t, keys)
		seen := map[string]bool{}
		for _, k := range keys {
			assert.False(t, seen[k.Name], "duplicate key %s", k.Name)
			seen[k.Name] = true
			assert.Equal(t, IsCredential(k.Name), k.Credential, k.Name)
			assert.NotEmpty(t, k.Description, k.Name)
		}
		if a == AuthWorkloadIdentity || a == AuthServicePrincipal {
			assert.True(t, hasClientID(keys), "identity auth must yield a client id key")
		}
		if a == AuthServicePrincipal {
			assert.True(t, hasCredential(keys), "service principal must carry its secret")
		}
	})
}

func hasClientID(keys []Key) bool {
	for _, k := range keys {
		if strings.HasSuffix(k.Name, "_CLIENTID") || strings.HasSuffix(k.Name, ".client-id") {
			return true
		}
	}
	return false
}

func hasCredential(keys []Key) bool {
	for _, k := range keys {
		if k.Credential {
			return true
		}
	}
	return false
}

func TestSupportTableConsistentWithKeys(t *testing.T) {
	rows := SupportTable()
	require.Len(t, rows, 19)
	assert.Equal(t, Targets(), func() []TargetType {
		var ts []TargetType
		for _, r := range rows {
			ts = append(ts, r.Target)
		}
		return ts
	}())
	for _, row := range rows {
		assert.NotEmpty(t, row.AuthTypes, row.Target)
		assert.NotEmpty(t, row.ClientTypes, row.Target)
		// Every combination outside the row must be refused.
		for _, a := range allAuthTypes {
			for _, c := range allClientTypes {
				_, err := Keys(row.Target, a, c)
				advertised := contains(row.AuthTypes, a) && contains(ClientTypes(row.Target, a), c)
				assert.Equal(t, advertised, err == nil, "%s/%s/%s: %v", row.Target, a, c, err)
			}
		}
	}
	kv := rows[4]
	assert.Equal(t, TargetKeyVault, kv.Target)
	assert.Equal(t, []AuthType{AuthWorkloadIdentity, AuthServicePrincipal, AuthKeyvaultCSI}, kv.AuthTypes)
	assert.Equal(t, []ClientType{ClientNone, ClientDotnet, ClientJava, ClientPython, ClientGo, ClientNodejs, ClientSpringBoot}, kv.ClientTypes)
}

func contains[T comparable](vs []T, v T) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// TestKeysReturnsFreshSlices guards the table: callers may append to or edit
// what Keys returns.
func TestKeysReturnsFreshSlices(t *testing.T) {
	a, err := Keys(TargetKeyVault, AuthServicePrincipal, ClientNone)
	require.NoError(t, err)
	a[0].Name = "MUTATED"
	b, err := Keys(TargetKeyVault, AuthServicePrincipal, ClientNone)
	require.NoError(t, err)
	assert.Equal(t, "AZURE_KEYVAULT_RESOURCEENDPOINT", b[0].Name)
	w, err := Keys(TargetKeyVault, AuthWorkloadIdentity, ClientNone)
	require.NoError(t, err)
	assert.Len(t, w, 3, "service principal must not grow the identity list in place")
}
