package catalog

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	sub      = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-app/providers/"
	clientID = "11111111-2222-3333-4444-555555555555"
)

func TestDerive(t *testing.T) {
	cases := []struct {
		name     string
		t        TargetType
		a        AuthType
		c        ClientType
		id       string
		clientID string
		want     map[string]string
	}{
		{"blob identity", TargetStorageBlob, AuthWorkloadIdentity, ClientNone,
			sub + "Microsoft.Storage/storageAccounts/acct/blobServices/default", clientID,
			map[string]string{"AZURE_STORAGEBLOB_RESOURCEENDPOINT": "https://acct.blob.core.windows.net/", "AZURE_STORAGEBLOB_CLIENTID": clientID}},
		{"blob secret: only a credential, nothing to derive", TargetStorageBlob, AuthSecret, ClientNone,
			sub + "Microsoft.Storage/storageAccounts/acct/blobServices/default", "", map[string]string{}},
		{"queue on bare account id, provider case-insensitive", TargetStorageQueue, AuthServicePrincipal, ClientNone,
			"/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000001/resourcegroups/rg/providers/microsoft.storage/storageaccounts/Acct", clientID,
			map[string]string{"AZURE_STORAGEQUEUE_RESOURCEENDPOINT": "https://acct.queue.core.windows.net/", "AZURE_STORAGEQUEUE_CLIENTID": clientID}},
		{"blob spring identity", TargetStorageBlob, AuthWorkloadIdentity, ClientSpringBoot,
			sub + "Microsoft.Storage/storageAccounts/acct/blobServices/default", clientID,
			map[string]string{
				"spring.cloud.azure.storage.blob.credential.managed-identity-enabled": "true",
				"spring.cloud.azure.storage.blob.credential.client-id":                clientID,
				"spring.cloud.azure.storage.blob.account-name":                        "acct",
				"spring.cloud.azure.storage.blob.endpoint":                            "https://acct.blob.core.windows.net/",
			}},
		{"keyvault identity without client id", TargetKeyVault, AuthWorkloadIdentity, ClientNone,
			sub + "Microsoft.KeyVault/vaults/my-vault", "",
			map[string]string{"AZURE_KEYVAULT_RESOURCEENDPOINT": "https://my-vault.vault.azure.net/", "AZURE_KEYVAULT_SCOPE": "https://vault.azure.net/.default"}},
		{"keyvault csi has no keys", TargetKeyVault, AuthKeyvaultCSI, ClientNone,
			sub + "Microsoft.KeyVault/vaults/my-vault", clientID, map[string]string{}},
		{"postgres nodejs secret", TargetPostgresFlexible, AuthSecret, ClientNodejs,
			sub + "Microsoft.DBforPostgreSQL/flexibleServers/pg1/databases/app", "",
			map[string]string{"AZURE_POSTGRESQL_HOST": "pg1.postgres.database.azure.com", "AZURE_POSTGRESQL_DATABASE": "app", "AZURE_POSTGRESQL_PORT": "5432", "AZURE_POSTGRESQL_SSL": "true"}},
		{"postgres connection-string layout derives only the client id", TargetPostgresFlexible, AuthWorkloadIdentity, ClientDotnet,
			sub + "Microsoft.DBforPostgreSQL/flexibleServers/pg1", clientID,
			map[string]string{"AZURE_POSTGRESQL_CLIENTID": clientID}},
		{"sql python", TargetSQL, AuthSecret, ClientPython,
			sub + "Microsoft.Sql/servers/sqlsrv/databases/orders", "",
			map[string]string{"AZURE_SQL_SERVER": "sqlsrv.database.windows.net", "AZURE_SQL_PORT": "1433", "AZURE_SQL_DATABASE": "orders"}},
		{"mysql python identity", TargetMySQLFlexible, AuthWorkloadIdentity, ClientPython,
			sub + "Microsoft.DBforMySQL/flexibleServers/my1/databases/shop", clientID,
			map[string]string{"AZURE_MYSQL_HOST": "my1.mysql.database.azure.com", "AZURE_MYSQL_NAME": "shop", "AZURE_MYSQL_CLIENTID": clientID}},
		{"redis none", TargetRedis, AuthSecret, ClientNone,
			sub + "Microsoft.Cache/redis/cache1/databases/2", "",
			map[string]string{"AZURE_REDIS_HOST": "cache1.redis.cache.windows.net", "AZURE_REDIS_PORT": "6380", "AZURE_REDIS_DATABASE": "2", "AZURE_REDIS_SSL": "true"}},
		{"servicebus", TargetServiceBus, AuthWorkloadIdentity, ClientNone,
			sub + "Microsoft.ServiceBus/namespaces/bus1", clientID,
			map[string]string{"AZURE_SERVICEBUS_FULLYQUALIFIEDNAMESPACE": "bus1.servicebus.windows.net", "AZURE_SERVICEBUS_CLIENTID": clientID}},
		{"eventhub with hub", TargetEventHub, AuthServicePrincipal, ClientNone,
			sub + "Microsoft.EventHub/namespaces/hubs1/eventhubs/orders", clientID,
			map[string]string{"AZURE_EVENTHUB_FULLYQUALIFIEDNAMESPACE": "hubs1.servicebus.windows.net", "AZURE_EVENTHUB_CLIENTID": clientID}},
		{"cosmos sql identity", TargetCosmosSQL, AuthWorkloadIdentity, ClientNone,
			sub + "Microsoft.DocumentDB/databaseAccounts/cdb/sqlDatabases/db1", clientID,
			map[string]string{
				"AZURE_COSMOS_LISTCONNECTIONSTRINGURL": "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-app/providers/Microsoft.DocumentDB/databaseAccounts/cdb/listConnectionStrings?api-version=2021-04-15",
				"AZURE_COSMOS_SCOPE":                   "https://management.azure.com/.default",
				"AZURE_COSMOS_RESOURCEENDPOINT":        "https://cdb.documents.azure.com:443/",
				"AZURE_COSMOS_CLIENTID":                clientID,
			}},
		{"cosmos cassandra secret", TargetCosmosCassandra, AuthSecret, ClientNone,
			sub + "Microsoft.DocumentDB/databaseAccounts/cas/cassandraKeyspaces/ks1", "",
			map[string]string{"AZURE_COSMOS_CONTACTPOINT": "cas.cassandra.cosmos.azure.com", "AZURE_COSMOS_PORT": "10350", "AZURE_COSMOS_KEYSPACE": "ks1", "AZURE_COSMOS_USERNAME": "cas"}},
		{"appconfig", TargetAppConfig, AuthWorkloadIdentity, ClientNone,
			sub + "Microsoft.AppConfiguration/configurationStores/conf1", clientID,
			map[string]string{"AZURE_APPCONFIGURATION_ENDPOINT": "https://conf1.azconfig.io", "AZURE_APPCONFIGURATION_CLIENTID": clientID}},
		{"openai secret derives base but not key", TargetCognitiveServices, AuthSecret, ClientNone,
			sub + "Microsoft.CognitiveServices/accounts/oai", "",
			map[string]string{"AZURE_OPENAI_BASE": "https://oai.openai.azure.com/"}},
		{"webpubsub", TargetWebPubSub, AuthWorkloadIdentity, ClientNone,
			sub + "Microsoft.SignalRService/WebPubSub/wps", clientID,
			map[string]string{"AZURE_WEBPUBSUB_HOST": "wps.webpubsub.azure.com", "AZURE_WEBPUBSUB_CLIENTID": clientID}},
		{"signalr", TargetSignalR, AuthWorkloadIdentity, ClientNone,
			sub + "Microsoft.SignalRService/SignalR/sr/", clientID, // one trailing slash is tolerated
			map[string]string{"AZURE_SIGNALR_HOST": "sr.service.signalr.net", "AZURE_SIGNALR_CLIENTID": clientID}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Derive(tc.t, tc.a, tc.c, tc.id, tc.clientID)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestDeriveRejectsBadIDs(t *testing.T) {
	cases := []struct {
		name, id, reason string
	}{
		{"empty", "", "is empty"},
		{"not an id", "acct.blob.core.windows.net", "must start with /subscriptions/"},
		{"too short", "/subscriptions/00000000-0000-0000-0000-000000000001", "is not an Azure resource id"},
		{"wrong provider", sub + "Microsoft.KeyVault/vaults/v1", "names a Microsoft.KeyVault/vaults resource"},
		{"wrong child", sub + "Microsoft.Storage/storageAccounts/acct/queueServices/default", `unexpected trailing segments "queueServices/default"`},
		{"deep child", sub + "Microsoft.Storage/storageAccounts/acct/blobServices/default/containers/c", "unexpected trailing segments"},
		{"no name", sub + "Microsoft.Storage/storageAccounts", "has no resource name"},
		{"host injection", sub + "Microsoft.Storage/storageAccounts/evil.com%2f", "not a DNS label"},
		{"query", sub + "Microsoft.Storage/storageAccounts/acct?x=1", "'?'"},
		{"whitespace", sub + "Microsoft.Storage/storageAccounts/ acct", "whitespace"},
		{"subscription not guid", "/subscriptions/mine/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct", "not a GUID"},
		{"bad group", "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg./providers/Microsoft.Storage/storageAccounts/acct", "invalid resource group"},
		{"empty child name", sub + "Microsoft.Storage/storageAccounts/acct/blobServices/", "unexpected trailing segments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Derive(TargetStorageBlob, AuthWorkloadIdentity, ClientNone, tc.id, clientID)
			require.Error(t, err)
			assert.Nil(t, got)
			assert.True(t, errors.Is(err, ErrInvalidResourceID))
			assert.False(t, errors.Is(err, ErrUnsupported))
			assert.ErrorContains(t, err, "targetService.id")
			assert.ErrorContains(t, err, tc.reason)
			assert.ErrorContains(t, err, "expected /subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/{name}[/blobServices/{blobServicesName}]")
		})
	}
}

func TestDeriveUnsupportedCombination(t *testing.T) {
	_, err := Derive(TargetKeyVault, AuthSecret, ClientNone, sub+"Microsoft.KeyVault/vaults/v1", "")
	assert.True(t, errors.Is(err, ErrUnsupported))
}

// TestDeriveInvariants: for every advertised combination and a valid id,
// Derive returns only non-credential keys of that combination.
func TestDeriveInvariants(t *testing.T) {
	ids := map[TargetType]string{}
	for _, e := range table {
		id := sub + e.resource.provider + "/" + e.resource.typ + "/name1"
		if e.resource.child != "" {
			id += "/" + e.resource.child + "/child1"
		}
		ids[e.target] = id
	}
	forEachCombination(t, func(t *testing.T, tt TargetType, a AuthType, c ClientType) {
		got, err := Derive(tt, a, c, ids[tt], clientID)
		require.NoError(t, err)
		keys, err := Keys(tt, a, c)
		require.NoError(t, err)
		allowed := map[string]bool{}
		for _, k := range keys {
			allowed[k.Name] = !k.Credential
		}
		for k, v := range got {
			assert.True(t, allowed[k], "%s is not a non-credential key of the combination", k)
			assert.NotEmpty(t, v, k)
		}
	})
}

func FuzzDerive(f *testing.F) {
	f.Add(uint8(0), uint8(1), uint8(0), sub+"Microsoft.Storage/storageAccounts/acct/blobServices/default", clientID)
	f.Add(uint8(4), uint8(3), uint8(0), sub+"Microsoft.KeyVault/vaults/v", "")
	f.Add(uint8(9), uint8(0), uint8(3), sub+"Microsoft.Sql/servers/s/databases/d", "")
	f.Add(uint8(12), uint8(0), uint8(0), "/subscriptions//resourceGroups//providers///", "x")
	f.Add(uint8(8), uint8(1), uint8(0), "/", "")
	targets := Targets()
	f.Fuzz(func(t *testing.T, ti, ai, ci uint8, id, cid string) {
		tt := targets[int(ti)%len(targets)]
		a := allAuthTypes[int(ai)%len(allAuthTypes)]
		c := allClientTypes[int(ci)%len(allClientTypes)]
		got, err := Derive(tt, a, c, id, cid)
		if err != nil {
			assert.Nil(t, got)
			return
		}
		for k := range got {
			assert.False(t, IsCredential(k), "derived a credential %s", k)
		}
	})
}
