package catalog

// This file is the catalog: PRODUCT.md section 4 as one Go literal.
//
// Reading it:
//   - A name starting with "_" is relative to the target's prefix:
//     "_CLIENTID" on storage-blob is AZURE_STORAGEBLOB_CLIENTID. Other names
//     (Spring properties) are taken as written.
//   - A target has rules; each rule lists the client types it applies to and
//     the ordered keys per auth type. A nil key list means the auth type is
//     unsupported for those clients.
//   - Service principal defaults to the identity keys plus _CLIENTSECRET and
//     _TENANTID (PRODUCT.md: "Service principal adds ..."); a rule sets sp
//     only where the names differ (Spring).
//   - keyvaultCsi yields no Secret keys: sc-job renders a SecretProviderClass
//     for the Secret Store CSI driver instead, so Keys returns an empty list.
//
// Choices that PRODUCT.md leaves open, made here and nowhere else:
//   - Client types: targets whose keys do not depend on the language accept
//     the six general clients (none, dotnet, java, python, go, nodejs). sql
//     accepts exactly the clients its row names (dotnet, java, go, python).
//   - Identity columns written "same without password" (sql, postgres, mysql,
//     cosmos-cassandra) keep every secret-column key except _PASSWORD, then
//     add the listed ones.
//   - signalr identity follows webpubsub: _HOST and _CLIENTID. Azure's own
//     service renders an AAD-style connection string here, but a name ending
//     _CONNECTIONSTRING would be classed a credential although it holds none.
//   - springBoot is supported only for storage-blob and keyvault, with the
//     Spring Cloud Azure 4.x property names; every other target rejects it
//     with ErrUnsupported rather than render property names we cannot vouch for.

var (
	// general is every client type whose keys do not vary by language.
	general = []ClientType{ClientNone, ClientDotnet, ClientJava, ClientPython, ClientGo, ClientNodejs}
	spring  = []ClientType{ClientSpringBoot}
)

func except(cs []ClientType, drop ClientType) []ClientType {
	var out []ClientType
	for _, c := range cs {
		if c != drop {
			out = append(out, c)
		}
	}
	return out
}

type rule struct {
	clients  []ClientType
	secret   []string // nil: secret auth unsupported
	identity []string // workload identity; nil: unsupported (and so is service principal)
	sp       []string // service principal; nil: identity + _CLIENTSECRET, _TENANTID
	csi      bool     // keyvaultCsi supported (keyvault only)
}

type entry struct {
	target   TargetType
	prefix   string
	resource resourceType
	rules    []rule
}

func l(names ...string) []string { return names }

const (
	blobSpring = "spring.cloud.azure.storage.blob."
	kvSpring   = "spring.cloud.azure.keyvault.secret."
)

var table = []entry{
	{TargetStorageBlob, "AZURE_STORAGEBLOB", storage("blobServices", "blob"), []rule{
		{clients: general, secret: l("_CONNECTIONSTRING"), identity: l("_RESOURCEENDPOINT", "_CLIENTID")},
		{clients: spring,
			secret:   l(blobSpring+"account-name", blobSpring+"account-key", blobSpring+"endpoint"),
			identity: l(blobSpring+"credential.managed-identity-enabled", blobSpring+"credential.client-id", blobSpring+"account-name", blobSpring+"endpoint"),
			sp:       l(blobSpring+"account-name", blobSpring+"endpoint", blobSpring+"credential.client-id", blobSpring+"credential.client-secret", blobSpring+"profile.tenant-id")},
	}},
	{TargetStorageQueue, "AZURE_STORAGEQUEUE", storage("queueServices", "queue"), []rule{
		{clients: general, secret: l("_CONNECTIONSTRING"), identity: l("_RESOURCEENDPOINT", "_CLIENTID")},
	}},
	{TargetStorageTable, "AZURE_STORAGETABLE", storage("tableServices", "table"), []rule{
		{clients: general, secret: l("_CONNECTIONSTRING"), identity: l("_RESOURCEENDPOINT", "_CLIENTID")},
	}},
	{TargetStorageFile, "AZURE_STORAGEFILE", storage("fileServices", "file"), []rule{
		{clients: general, secret: l("_CONNECTIONSTRING")},
	}},
	{TargetKeyVault, "AZURE_KEYVAULT", keyVault, []rule{
		{clients: general, identity: l("_RESOURCEENDPOINT", "_SCOPE", "_CLIENTID"), csi: true},
		{clients: spring,
			identity: l(kvSpring+"credential.managed-identity-enabled", kvSpring+"credential.client-id", kvSpring+"endpoint"),
			sp:       l(kvSpring+"endpoint", kvSpring+"credential.client-id", kvSpring+"credential.client-secret", kvSpring+"profile.tenant-id")},
	}},
	{TargetCosmosSQL, "AZURE_COSMOS", cosmos("sqlDatabases"), []rule{
		{clients: general, secret: l("_CONNECTIONSTRING"), identity: l("_LISTCONNECTIONSTRINGURL", "_SCOPE", "_RESOURCEENDPOINT", "_CLIENTID")},
	}},
	{TargetCosmosMongo, "AZURE_COSMOS", cosmos("mongodbDatabases"), []rule{
		{clients: general, secret: l("_CONNECTIONSTRING"), identity: l("_LISTCONNECTIONSTRINGURL", "_SCOPE", "_RESOURCEENDPOINT", "_CLIENTID")},
	}},
	{TargetCosmosTable, "AZURE_COSMOS", cosmos("tables"), []rule{
		{clients: general, secret: l("_CONNECTIONSTRING"), identity: l("_LISTCONNECTIONSTRINGURL", "_SCOPE", "_RESOURCEENDPOINT", "_CLIENTID")},
	}},
	{TargetCosmosCassandra, "AZURE_COSMOS", cosmos("cassandraKeyspaces"), []rule{
		{clients: general,
			secret:   l("_CONTACTPOINT", "_PORT", "_KEYSPACE", "_USERNAME", "_PASSWORD"),
			identity: l("_CONTACTPOINT", "_PORT", "_KEYSPACE", "_USERNAME", "_LISTKEYURL", "_SCOPE", "_RESOURCEENDPOINT", "_CLIENTID")},
	}},
	{TargetSQL, "AZURE_SQL", sqlServer, []rule{
		{clients: []ClientType{ClientDotnet, ClientJava, ClientGo},
			secret:   l("_CONNECTIONSTRING"),
			identity: l("_CONNECTIONSTRING", "_AUTHENTICATION", "_CLIENTID")},
		{clients: []ClientType{ClientPython},
			secret:   l("_SERVER", "_PORT", "_DATABASE", "_USER", "_PASSWORD"),
			identity: l("_SERVER", "_PORT", "_DATABASE", "_USER", "_AUTHENTICATION", "_CLIENTID")},
	}},
	{TargetPostgresFlexible, "AZURE_POSTGRESQL", postgres, []rule{
		{clients: except(general, ClientNodejs), secret: l("_CONNECTIONSTRING"), identity: l("_CONNECTIONSTRING", "_CLIENTID")},
		{clients: []ClientType{ClientNodejs},
			secret:   l("_HOST", "_USER", "_PASSWORD", "_DATABASE", "_PORT", "_SSL"),
			identity: l("_HOST", "_USER", "_DATABASE", "_PORT", "_SSL", "_CLIENTID")},
	}},
	{TargetMySQLFlexible, "AZURE_MYSQL", mysql, []rule{
		{clients: except(general, ClientPython), secret: l("_CONNECTIONSTRING"), identity: l("_CONNECTIONSTRING", "_CLIENTID")},
		{clients: []ClientType{ClientPython},
			secret:   l("_HOST", "_NAME", "_USER", "_PASSWORD"),
			identity: l("_HOST", "_NAME", "_USER", "_CLIENTID")},
	}},
	{TargetRedis, "AZURE_REDIS", redis, []rule{
		{clients: except(general, ClientNone), secret: l("_CONNECTIONSTRING")},
		{clients: []ClientType{ClientNone}, secret: l("_HOST", "_PORT", "_DATABASE", "_PASSWORD", "_SSL")},
	}},
	{TargetServiceBus, "AZURE_SERVICEBUS", serviceBus, []rule{
		{clients: general, secret: l("_CONNECTIONSTRING"), identity: l("_FULLYQUALIFIEDNAMESPACE", "_CLIENTID")},
	}},
	{TargetEventHub, "AZURE_EVENTHUB", eventHub, []rule{
		{clients: general, secret: l("_CONNECTIONSTRING"), identity: l("_FULLYQUALIFIEDNAMESPACE", "_CLIENTID")},
	}},
	{TargetAppConfig, "AZURE_APPCONFIGURATION", appConfig, []rule{
		{clients: general, secret: l("_CONNECTIONSTRING"), identity: l("_ENDPOINT", "_CLIENTID")},
	}},
	{TargetCognitiveServices, "AZURE_OPENAI", cognitive, []rule{
		{clients: general, secret: l("_BASE", "_KEY"), identity: l("_BASE", "_CLIENTID")},
	}},
	{TargetSignalR, "AZURE_SIGNALR", signalR, []rule{
		{clients: general, secret: l("_CONNECTIONSTRING"), identity: l("_HOST", "_CLIENTID")},
	}},
	{TargetWebPubSub, "AZURE_WEBPUBSUB", webPubSub, []rule{
		{clients: general, secret: l("_CONNECTIONSTRING"), identity: l("_HOST", "_CLIENTID")},
	}},
}

// descriptions explain each key, by the part after the prefix for AZURE_*
// names and by the last property segment for Spring names.
var descriptions = map[string]string{
	"CONNECTIONSTRING":         "connection string of the target service",
	"RESOURCEENDPOINT":         "endpoint of the target service",
	"CLIENTID":                 "client id of the workload identity or service principal",
	"CLIENTSECRET":             "client secret of the service principal",
	"TENANTID":                 "tenant id of the service principal",
	"SCOPE":                    "OAuth scope to request access tokens for",
	"LISTCONNECTIONSTRINGURL":  "Azure Resource Manager URL that lists the account's connection strings",
	"LISTKEYURL":               "Azure Resource Manager URL that lists the account's keys",
	"CONTACTPOINT":             "Cassandra contact point (host name)",
	"PORT":                     "port of the target service",
	"KEYSPACE":                 "Cassandra keyspace",
	"USERNAME":                 "user name",
	"USER":                     "user name",
	"PASSWORD":                 "password",
	"SERVER":                   "server host name",
	"DATABASE":                 "database name (for redis, the database index)",
	"NAME":                     "database name",
	"AUTHENTICATION":           "authentication method the database driver uses",
	"HOST":                     "host name of the target service",
	"SSL":                      "whether to connect over TLS",
	"FULLYQUALIFIEDNAMESPACE":  "fully qualified host name of the namespace",
	"ENDPOINT":                 "endpoint of the configuration store",
	"BASE":                     "Azure OpenAI endpoint",
	"KEY":                      "access key",
	"account-name":             "storage account name",
	"account-key":              "storage account access key",
	"endpoint":                 "endpoint of the target service",
	"client-id":                "client id of the workload identity or service principal",
	"client-secret":            "client secret of the service principal",
	"tenant-id":                "tenant id of the service principal",
	"managed-identity-enabled": "whether Spring Cloud Azure authenticates with the (workload) identity",
}
