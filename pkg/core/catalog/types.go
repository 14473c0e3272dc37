package catalog

import (
	"errors"
	"fmt"
	"strings"
)

// TargetType names the kind of Azure service a connection points at.
type TargetType string

// The target types, in the order Targets and SupportTable list them.
const (
	TargetStorageBlob       TargetType = "storage-blob"
	TargetStorageQueue      TargetType = "storage-queue"
	TargetStorageTable      TargetType = "storage-table"
	TargetStorageFile       TargetType = "storage-file"
	TargetKeyVault          TargetType = "keyvault"
	TargetCosmosSQL         TargetType = "cosmos-sql"
	TargetCosmosMongo       TargetType = "cosmos-mongo"
	TargetCosmosTable       TargetType = "cosmos-table"
	TargetCosmosCassandra   TargetType = "cosmos-cassandra"
	TargetSQL               TargetType = "sql"
	TargetPostgresFlexible  TargetType = "postgres-flexible"
	TargetMySQLFlexible     TargetType = "mysql-flexible"
	TargetRedis             TargetType = "redis"
	TargetServiceBus        TargetType = "servicebus"
	TargetEventHub          TargetType = "eventhub"
	TargetAppConfig         TargetType = "appconfig"
	TargetCognitiveServices TargetType = "cognitiveservices"
	TargetSignalR           TargetType = "signalr"
	TargetWebPubSub         TargetType = "webpubsub"
)

// AuthType is how the workload authenticates to the target.
type AuthType string

// The auth types, in canonical order.
const (
	AuthSecret           AuthType = "secret"
	AuthWorkloadIdentity AuthType = "workloadIdentity"
	AuthServicePrincipal AuthType = "servicePrincipalSecret"
	// AuthKeyvaultCSI renders a SecretProviderClass for the Secret Store CSI
	// driver instead of Secret keys; only keyvault supports it.
	AuthKeyvaultCSI AuthType = "keyvaultCsi"
)

var allAuthTypes = []AuthType{AuthSecret, AuthWorkloadIdentity, AuthServicePrincipal, AuthKeyvaultCSI}

// ClientType is the application's language or framework; it only changes the
// key layout (one connection string versus split host/port/... keys).
type ClientType string

// The client types Azure Service Connector knows, in canonical order. Some are
// accepted by ParseClient but supported by no target yet (php, ruby, django,
// kafka-springBoot): PRODUCT.md gives no key layout for them, and guessing one
// would render keys applications do not read.
const (
	ClientNone            ClientType = "none"
	ClientDotnet          ClientType = "dotnet"
	ClientJava            ClientType = "java"
	ClientPython          ClientType = "python"
	ClientGo              ClientType = "go"
	ClientNodejs          ClientType = "nodejs"
	ClientPHP             ClientType = "php"
	ClientRuby            ClientType = "ruby"
	ClientDjango          ClientType = "django"
	ClientSpringBoot      ClientType = "springBoot"
	ClientKafkaSpringBoot ClientType = "kafka-springBoot"
)

var allClientTypes = []ClientType{
	ClientNone, ClientDotnet, ClientJava, ClientPython, ClientGo, ClientNodejs,
	ClientPHP, ClientRuby, ClientDjango, ClientSpringBoot, ClientKafkaSpringBoot,
}

// Key is one configuration key of a connection. Credential keys are hidden in
// list-configuration and travel sealed; Credential always equals IsCredential(Name).
type Key struct {
	Name        string
	Credential  bool
	Description string
}

// ErrUnsupported is wrapped by every error of Keys (and of Derive for an
// unsupported combination), so callers can tell "never valid" apart.
var ErrUnsupported = errors.New("unsupported combination")

// unsupportedError prints as one readable sentence yet matches ErrUnsupported:
// fmt.Errorf("%w: ...") would prefix every message with the sentinel's text.
type unsupportedError struct{ msg string }

func (e *unsupportedError) Error() string { return e.msg }
func (e *unsupportedError) Unwrap() error { return ErrUnsupported }

func unsupportedf(format string, args ...any) error {
	return &unsupportedError{msg: fmt.Sprintf(format, args...)}
}

// ParseTarget returns s as a TargetType, or an error naming the valid values.
// Matching is exact: the values are wire names shared with the control plane.
func ParseTarget(s string) (TargetType, error) {
	for _, t := range Targets() {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown target type %q; valid: %s", s, join(Targets()))
}

// ParseAuth returns s as an AuthType, or an error naming the valid values.
func ParseAuth(s string) (AuthType, error) {
	for _, a := range allAuthTypes {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown auth type %q; valid: %s", s, join(allAuthTypes))
}

// ParseClient returns s as a ClientType, or an error naming the valid values.
// The empty string means ClientNone, the API's default.
func ParseClient(s string) (ClientType, error) {
	if s == "" {
		return ClientNone, nil
	}
	for _, c := range allClientTypes {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown client type %q; valid: %s", s, join(allClientTypes))
}

func join[T ~string](vs []T) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = string(v)
	}
	return strings.Join(parts, ", ")
}
