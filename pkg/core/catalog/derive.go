package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// ErrInvalidResourceID is wrapped by Derive's errors about the resource id.
var ErrInvalidResourceID = errors.New("invalid target resource id")

// resourceType is the Azure resource a target's id must name, and what its
// parts tell about the configuration values.
type resourceType struct {
	provider string // resource provider namespace, e.g. Microsoft.Storage
	typ      string // e.g. storageAccounts
	child    string // optional child resource type, e.g. blobServices; "" for none
	// derive returns values by relative ("_HOST") or full (Spring) key name;
	// Derive keeps only the non-credential keys of the combination asked for,
	// so a derive func may return more than one layout needs.
	derive func(id resourceID) map[string]string
}

// resourceID is a parsed /subscriptions/.../providers/NS/TYPE/NAME[/CHILDTYPE/CHILDNAME].
type resourceID struct {
	subscription, group, name, childName string
}

func storage(child, kind string) resourceType {
	return resourceType{"Microsoft.Storage", "storageAccounts", child, func(id resourceID) map[string]string {
		endpoint := "https://" + id.name + "." + kind + ".core.windows.net/"
		spring := "spring.cloud.azure.storage." + kind + "."
		return map[string]string{"_RESOURCEENDPOINT": endpoint, spring + "endpoint": endpoint, spring + "account-name": id.name}
	}}
}

var keyVault = resourceType{"Microsoft.KeyVault", "vaults", "", func(id resourceID) map[string]string {
	endpoint := "https://" + id.name + ".vault.azure.net/"
	return map[string]string{"_RESOURCEENDPOINT": endpoint, "_SCOPE": "https://vault.azure.net/.default", kvSpring + "endpoint": endpoint}
}}

// cosmosAPIVersion is the ARM api-version Azure's Service Connector puts in
// the list URLs; the app calls them with a token for the ARM scope.
const cosmosAPIVersion = "2021-04-15"

func cosmos(child string) resourceType {
	return resourceType{"Microsoft.DocumentDB", "databaseAccounts", child, func(id resourceID) map[string]string {
		arm := "https://management.azure.com/subscriptions/" + id.subscription + "/resourceGroups/" + id.group +
			"/providers/Microsoft.DocumentDB/databaseAccounts/" + id.name
		m := map[string]string{
			"_LISTCONNECTIONSTRINGURL": arm + "/listConnectionStrings?api-version=" + cosmosAPIVersion,
			"_LISTKEYURL":              arm + "/listKeys?api-version=" + cosmosAPIVersion,
			"_SCOPE":                   "https://management.azure.com/.default",
			// The account's documentEndpoint, which ARM reports for every API kind.
			"_RESOURCEENDPOINT": "https://" + id.name + ".documents.azure.com:443/",
			"_CONTACTPOINT":     id.name + ".cassandra.cosmos.azure.com",
			"_PORT":             "10350", // Cassandra API port
			"_USERNAME":         id.name, // Cassandra API user is the account name
		}
		setIf(m, "_KEYSPACE", id.childName)
		return m
	}}
}

var sqlServer = resourceType{"Microsoft.Sql", "servers", "databases", func(id resourceID) map[string]string {
	m := map[string]string{"_SERVER": id.name + ".database.windows.net", "_PORT": "1433"}
	setIf(m, "_DATABASE", id.childName)
	return m
}}

var postgres = resourceType{"Microsoft.DBforPostgreSQL", "flexibleServers", "databases", func(id resourceID) map[string]string {
	m := map[string]string{"_HOST": id.name + ".postgres.database.azure.com", "_PORT": "5432", "_SSL": "true"}
	setIf(m, "_DATABASE", id.childName)
	return m
}}

var mysql = resourceType{"Microsoft.DBforMySQL", "flexibleServers", "databases", func(id resourceID) map[string]string {
	m := map[string]string{"_HOST": id.name + ".mysql.database.azure.com"}
	setIf(m, "_NAME", id.childName)
	return m
}}

var redis = resourceType{"Microsoft.Cache", "redis", "databases", func(id resourceID) map[string]string {
	db := id.childName
	if db == "" {
		db = "0"
	}
	// 6380 is Azure Cache for Redis's TLS port; the non-TLS port is off by default.
	return map[string]string{"_HOST": id.name + ".redis.cache.windows.net", "_PORT": "6380", "_DATABASE": db, "_SSL": "true"}
}}

// Event Hubs namespaces live under servicebus.windows.net too.
var (
	serviceBus = resourceType{"Microsoft.ServiceBus", "namespaces", "", namespaceHost}
	eventHub   = resourceType{"Microsoft.EventHub", "namespaces", "eventhubs", namespaceHost}
)

func namespaceHost(id resourceID) map[string]string {
	return map[string]string{"_FULLYQUALIFIEDNAMESPACE": id.name + ".servicebus.windows.net"}
}

var appConfig = resourceType{"Microsoft.AppConfiguration", "configurationStores", "", func(id resourceID) map[string]string {
	return map[string]string{"_ENDPOINT": "https://" + id.name + ".azconfig.io"}
}}

// cognitive assumes the account's custom subdomain is its name, as the portal
// and CLI create it; an account with another subdomain needs _BASE from the caller.
var cognitive = resourceType{"Microsoft.CognitiveServices", "accounts", "", func(id resourceID) map[string]string {
	return map[string]string{"_BASE": "https://" + id.name + ".openai.azure.com/"}
}}

var (
	signalR = resourceType{"Microsoft.SignalRService", "SignalR", "", func(id resourceID) map[string]string {
		return map[string]string{"_HOST": id.name + ".service.signalr.net"}
	}}
	webPubSub = resourceType{"Microsoft.SignalRService", "WebPubSub", "", func(id resourceID) map[string]string {
		return map[string]string{"_HOST": id.name + ".webpubsub.azure.com"}
	}}
)

func setIf(m map[string]string, k, v string) {
	if v != "" {
		m[k] = v
	}
}

// Derive fills the values a control plane can derive from the target's
// resource id and the identity's client id: endpoints, hosts, ports, scopes
// and the like. It returns only non-credential keys of the combination's
// Keys; anything it cannot know (user names, connection strings, secrets,
// tenant ids) is left to the caller. clientID may be empty, in which case no
// client-id key is filled. An unsupported combination returns Keys's error;
// an id that is not a resource of the target's provider and type returns an
// error wrapping ErrInvalidResourceID that names "targetService.id".
func Derive(t TargetType, a AuthType, c ClientType, resourceID string, clientID string) (map[string]string, error) {
	keys, err := Keys(t, a, c)
	if err != nil {
		return nil, err
	}
	e := lookup(t)
	id, err := parseResourceID(resourceID, e.resource)
	if err != nil {
		return nil, err
	}
	facts := map[string]string{}
	for k, v := range e.resource.derive(id) {
		facts[expand(e.prefix, k)] = v
	}
	out := map[string]string{}
	for _, k := range keys {
		v, ok := facts[k.Name]
		switch {
		case k.Credential:
			continue // credentials come sealed from the caller, never derived
		case k.Name == e.prefix+"_CLIENTID", strings.HasSuffix(k.Name, ".credential.client-id"):
			v, ok = clientID, clientID != ""
		case strings.HasSuffix(k.Name, ".credential.managed-identity-enabled"):
			v, ok = "true", true
		}
		if ok {
			out[k.Name] = v
		}
	}
	return out, nil
}

var (
	guidRE = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	// The resource name becomes a DNS label in derived endpoints; requiring
	// one keeps a crafted id from steering an endpoint to another host.
	dnsLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
)

// parseResourceID checks that s names a resource of type rt. Azure compares
// the fixed segments and provider/type names case-insensitively, so do we.
func parseResourceID(s string, rt resourceType) (resourceID, error) {
	want := "/subscriptions/{subscription}/resourceGroups/{group}/providers/" + rt.provider + "/" + rt.typ + "/{name}"
	if rt.child != "" {
		want += "[/" + rt.child + "/{" + rt.child + "Name}]"
	}
	fail := func(reason string) (resourceID, error) {
		return resourceID{}, fmt.Errorf("%w: targetService.id %s; expected %s", ErrInvalidResourceID, reason, want)
	}
	if s == "" {
		return fail("is empty")
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '?' || r == '#' }) >= 0 {
		return fail("contains whitespace, control characters, '?' or '#'")
	}
	parts := strings.Split(strings.TrimSuffix(s, "/"), "/")
	if parts[0] != "" {
		return fail("must start with /subscriptions/")
	}
	parts = parts[1:]
	if len(parts) < 7 || !strings.EqualFold(parts[0], "subscriptions") ||
		!strings.EqualFold(parts[2], "resourceGroups") || !strings.EqualFold(parts[4], "providers") {
		return fail("is not an Azure resource id")
	}
	id := resourceID{subscription: parts[1], group: parts[3]}
	switch {
	case !guidRE.MatchString(id.subscription):
		return fail(fmt.Sprintf("has subscription %q, which is not a GUID", id.subscription))
	case !validGroup(id.group):
		return fail(fmt.Sprintf("has an invalid resource group name %q", id.group))
	case !strings.EqualFold(parts[5], rt.provider) || !strings.EqualFold(parts[6], rt.typ):
		return fail(fmt.Sprintf("names a %s/%s resource", parts[5], parts[6]))
	case len(parts) < 8 || parts[7] == "":
		return fail("has no resource name")
	case !dnsLabelRE.MatchString(parts[7]):
		return fail(fmt.Sprintf("has resource name %q, which is not a DNS label", parts[7]))
	}
	// Host names are case-insensitive; Azure's own endpoints are lowercase.
	id.name = strings.ToLower(parts[7])
	switch rest := parts[8:]; {
	case len(rest) == 0:
	case len(rest) == 2 && rt.child != "" && strings.EqualFold(rest[0], rt.child) && rest[1] != "":
		id.childName = rest[1]
	default:
		return fail(fmt.Sprintf("has unexpected trailing segments %q", strings.Join(rest, "/")))
	}
	return id, nil
}

// validGroup follows Azure's resource group naming rule: 1-90 letters,
// digits, '_', '-', '.', '(' or ')', not ending in '.'.
func validGroup(g string) bool {
	if g == "" || len(g) > 90 || strings.HasSuffix(g, ".") {
		return false
	}
	for _, r := range g {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("_-.()", r) {
			return false
		}
	}
	return true
}
