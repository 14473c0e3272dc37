package fleetauth

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
)

// ResolverSyncInterval is how often the servers of a cluster compare their
// account JWT stores and merge what they miss. A pushed update reaches
// every server at once through the system account; this only repairs a
// server that was down during a push.
const ResolverSyncInterval = 2 * time.Minute

// Configure makes o trust the keystore's operator, with its system account
// and a full account resolver in resolverDir (the "full" resolver keeps
// every account JWT and takes pushed updates), preloaded with the system
// and application accounts. Users are then verified by their JWT chain:
// a newly issued cluster needs no change here.
func (k *Keystore) Configure(o *server.Options, resolverDir string) error {
	op, err := jwt.DecodeOperatorClaims(k.operatorJWT)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrKeystore, operatorJWTFile, err)
	}
	accountJWT, err := k.AccountJWT()
	if err != nil {
		return err
	}
	r, err := server.NewDirAccResolver(resolverDir, 0, ResolverSyncInterval, server.NoDelete)
	if err != nil {
		return fmt.Errorf("account resolver in %s: %w", resolverDir, err)
	}
	// Store keeps a newer JWT the resolver already has (pushed while this
	// keystore was elsewhere) and takes the keystore's otherwise.
	for pub, token := range map[string]string{k.SystemAccountPublicKey(): k.sysJWT, k.accountPub: accountJWT} {
		if err := r.Store(pub, token); err != nil {
			r.Close()
			return fmt.Errorf("preload account %s: %w", pub, err)
		}
	}
	o.TrustedOperators = []*jwt.OperatorClaims{op}
	o.SystemAccount = k.SystemAccountPublicKey()
	o.AccountResolver = r
	return nil
}

// ConfigText renders what Configure sets as nats-server configuration, for
// a control plane of servers run from a config file (add listen, jetstream
// and cluster blocks). It holds JWTs only: public material, no seed.
func (k *Keystore) ConfigText(resolverDir string) (string, error) {
	// Quoted with Go's %q below, which is NATS' quoting only for printable
	// ASCII without quotes or backslashes: anything else is refused rather
	// than written as a path nats-server would read differently.
	for _, r := range resolverDir {
		if r < ' ' || r > '~' || r == '"' || r == '\\' {
			return "", fmt.Errorf("%w: resolver directory %q: only printable ASCII without quotes or backslashes can be written to the configuration", ErrKeystore, resolverDir)
		}
	}
	accountJWT, err := k.AccountJWT()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# sc-extension control plane: decentralized JWT authentication (scctl fleetauth).\n")
	fmt.Fprintf(&b, "operator: %q\n", k.operatorJWT)
	fmt.Fprintf(&b, "system_account: %s\n", k.SystemAccountPublicKey())
	b.WriteString("resolver: {\n  type: full\n")
	fmt.Fprintf(&b, "  dir: %q\n", resolverDir)
	fmt.Fprintf(&b, "  allow_delete: false\n  interval: %q\n}\n", ResolverSyncInterval.String())
	b.WriteString("resolver_preload: {\n")
	fmt.Fprintf(&b, "  %s: %q\n", k.SystemAccountPublicKey(), k.sysJWT)
	fmt.Fprintf(&b, "  %s: %q\n", k.accountPub, accountJWT)
	b.WriteString("}\n")
	return b.String(), nil
}
