package fleetauth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// AccountName is the application account's name in its JWT: the
// account every cluster and the control plane's admin belong to.
const AccountName = "SC"

// MaxConsumers is the application account's consumer limit per stream:
// one durable per cluster on the request stream, besides the control
// plane's short-lived ordered consumers. It must be a number: nats-server
// (2.11+) caps a stream at 1,000 consumers (JSDefaultMaxConsumersPerStream)
// unless the stream or the account sets a positive limit, and "unlimited"
// counts as unset, so a fleet's 1,001st cluster would be refused.
const MaxConsumers = 100_000

// Keystore file names. operator.jwt is written last when a keystore is
// created: a directory without it is an interrupted creation, created anew.
const (
	operatorSeedFile = "operator.nk"
	operatorJWTFile  = "operator.jwt"
	sysSeedFile      = "sys.nk"
	sysJWTFile       = "sys.jwt"
	sysCredsFile     = "sys.creds"
	accountPubFile   = "account.pub"
	signingSeedFile  = "account-signing.nk"
	accountJWTFile   = "account.jwt"
	adminCredsFile   = "admin.creds"
	clustersDir      = "clusters"
	lockFile         = ".lock"
)

var (
	// ErrIssued: the cluster already has a user; remove it first to issue
	// another (its agent would otherwise hold credentials nobody revoked).
	ErrIssued = errors.New("cluster already has credentials")
	// ErrNotIssued: this keystore never issued the cluster a user.
	ErrNotIssued = errors.New("cluster has no credentials in this keystore")
	// ErrKeystore: the keystore directory is unusable (unreadable,
	// corrupt, or keys that do not belong together).
	ErrKeystore = errors.New("fleetauth keystore")
)

// PermissionsFunc returns everything a cluster's agent may do; the
// keystore converts it into the user JWT. devserver.ClusterPermissions is
// the one source (passed in, since devserver itself builds on this package).
type PermissionsFunc func(cluster string) *server.Permissions

// Keystore holds the keys and JWTs of one control plane. Methods that
// change the account JWT (Revoke) take a file lock, so a running
// `scctl server` and `scctl cluster remove` cannot lose each other's
// revocations.
type Keystore struct {
	dir         string
	perms       PermissionsFunc
	operator    nkeys.KeyPair
	sys         nkeys.KeyPair
	signing     nkeys.KeyPair
	accountPub  string
	operatorJWT string
	sysJWT      string
}

// Open loads the keystore in dir, creating it (and every key) on first use.
func Open(dir string, perms PermissionsFunc) (*Keystore, error) {
	if perms == nil {
		return nil, fmt.Errorf("%w: a permissions function is required", ErrKeystore)
	}
	if err := os.MkdirAll(filepath.Join(dir, clustersDir), 0o700); err != nil {
		return nil, fmt.Errorf("%w: create %s: %w", ErrKeystore, dir, err)
	}
	// MkdirAll leaves a directory that existed as it was.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeystore, err)
	}
	k := &Keystore{dir: dir, perms: perms}
	err := k.locked(func() error {
		switch _, err := os.Stat(k.path(operatorJWTFile)); {
		case errors.Is(err, fs.ErrNotExist):
			return k.create()
		case err != nil:
			return fmt.Errorf("%w: %w", ErrKeystore, err)
		}
		return k.load()
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Dir is the keystore directory.
func (k *Keystore) Dir() string { return k.dir }

func (k *Keystore) path(name string) string { return filepath.Join(k.dir, name) }

// create makes every key and JWT. The SC account has JetStream without
// limits of its own (the streams carry theirs) and one signing key, which
// signs every user.
func (k *Keystore) create() error {
	var err error
	if k.operator, err = nkeys.CreateOperator(); err != nil {
		return fmt.Errorf("%w: operator key: %w", ErrKeystore, err)
	}
	if k.sys, err = nkeys.CreateAccount(); err != nil {
		return fmt.Errorf("%w: system account key: %w", ErrKeystore, err)
	}
	account, err := nkeys.CreateAccount()
	if err != nil {
		return fmt.Errorf("%w: account key: %w", ErrKeystore, err)
	}
	if k.signing, err = nkeys.CreateAccount(); err != nil {
		return fmt.Errorf("%w: signing key: %w", ErrKeystore, err)
	}
	opPub, _ := k.operator.PublicKey()
	sysPub, _ := k.sys.PublicKey()
	k.accountPub, _ = account.PublicKey()
	signingPub, _ := k.signing.PublicKey()

	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "sc-extension"
	oc.SystemAccount = sysPub
	if k.operatorJWT, err = oc.Encode(k.operator); err != nil {
		return fmt.Errorf("%w: operator JWT: %w", ErrKeystore, err)
	}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	if k.sysJWT, err = sc.Encode(k.operator); err != nil {
		return fmt.Errorf("%w: system account JWT: %w", ErrKeystore, err)
	}
	ac := jwt.NewAccountClaims(k.accountPub)
	ac.Name = AccountName
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
		MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: MaxConsumers,
	}
	ac.SigningKeys.Add(signingPub)
	accountJWT, err := ac.Encode(k.operator)
	if err != nil {
		return fmt.Errorf("%w: account JWT: %w", ErrKeystore, err)
	}
	sysCreds, err := k.userCreds(k.sys, "", "sys", nil)
	if err != nil {
		return err
	}
	adminCreds, err := k.userCreds(k.signing, k.accountPub, "admin", nil)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{operatorSeedFile, seed(k.operator)}, {sysSeedFile, seed(k.sys)}, {signingSeedFile, seed(k.signing)},
		{accountPubFile, []byte(k.accountPub)}, {sysJWTFile, []byte(k.sysJWT)}, {accountJWTFile, []byte(accountJWT)},
		{sysCredsFile, sysCreds}, {adminCredsFile, adminCreds},
		{operatorJWTFile, []byte(k.operatorJWT)}, // last: marks the keystore complete
	}
	for _, f := range files {
		if err := writeFile(k.path(f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

func (k *Keystore) load() error {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(k.path(name))
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrKeystore, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	pair := func(name string) (nkeys.KeyPair, error) {
		s, err := read(name)
		if err != nil {
			return nil, err
		}
		kp, err := nkeys.FromSeed([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("%w: %s does not hold a seed", ErrKeystore, name)
		}
		return kp, nil
	}
	var err error
	if k.operator, err = pair(operatorSeedFile); err != nil {
		return err
	}
	if k.sys, err = pair(sysSeedFile); err != nil {
		return err
	}
	if k.signing, err = pair(signingSeedFile); err != nil {
		return err
	}
	if k.accountPub, err = read(accountPubFile); err != nil {
		return err
	}
	if k.operatorJWT, err = read(operatorJWTFile); err != nil {
		return err
	}
	if k.sysJWT, err = read(sysJWTFile); err != nil {
		return err
	}
	ac, err := k.account()
	if err != nil {
		return err
	}
	signingPub, _ := k.signing.PublicKey()
	if !ac.SigningKeys.Contains(signingPub) {
		return fmt.Errorf("%w: %s is not a signing key of account %s", ErrKeystore, signingSeedFile, k.accountPub)
	}
	return nil
}

// account decodes the current account JWT from disk: another process
// (scctl cluster remove) may have changed it since Open.
func (k *Keystore) account() (*jwt.AccountClaims, error) {
	b, err := os.ReadFile(k.path(accountJWTFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeystore, err)
	}
	ac, err := jwt.DecodeAccountClaims(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeystore, accountJWTFile, err)
	}
	if ac.Subject != k.accountPub {
		return nil, fmt.Errorf("%w: %s is not account %s", ErrKeystore, accountJWTFile, k.accountPub)
	}
	return ac, nil
}

// AccountJWT is the application account's current JWT.
func (k *Keystore) AccountJWT() (string, error) {
	b, err := os.ReadFile(k.path(accountJWTFile))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrKeystore, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// AccountPublicKey is the application account's identity.
func (k *Keystore) AccountPublicKey() string { return k.accountPub }

// SystemAccountPublicKey is the system account's identity.
func (k *Keystore) SystemAccountPublicKey() string {
	pub, _ := k.sys.PublicKey()
	return pub
}

// OperatorJWT is the operator's self-signed JWT the servers trust.
func (k *Keystore) OperatorJWT() string { return k.operatorJWT }

// AdminCredsFile is the control plane's (scctl's) .creds file: a user of
// the application account without restrictions.
func (k *Keystore) AdminCredsFile() string { return AdminCredsPath(k.dir) }

// AdminCredsPath is the admin's .creds in keystore dir, for callers that
// name it without opening the keystore.
func AdminCredsPath(dir string) string { return filepath.Join(dir, adminCredsFile) }

// Complete reports, without creating anything, whether dir holds a whole
// keystore: its operator JWT is written last.
func Complete(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, operatorJWTFile)); err != nil {
		return fmt.Errorf("%w: %s is no keystore (no %s): %w", ErrKeystore, dir, operatorJWTFile, err)
	}
	return nil
}

// SysCredsFile is the system account user's .creds file, which pushes
// account JWT updates.
func (k *Keystore) SysCredsFile() string { return k.path(sysCredsFile) }

// Clusters lists the clusters with an issued user, sorted.
func (k *Keystore) Clusters() ([]string, error) {
	entries, err := os.ReadDir(k.path(clustersDir))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeystore, err)
	}
	var out []string
	for _, e := range entries {
		if c, ok := strings.CutSuffix(e.Name(), ".pub"); ok && !e.IsDir() {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out, nil
}

// UserPublicKey is the public key of the user issued to cluster.
func (k *Keystore) UserPublicKey(cluster string) (string, error) {
	b, err := os.ReadFile(k.clusterFile(cluster))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("cluster %s: %w", cluster, ErrNotIssued)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrKeystore, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (k *Keystore) clusterFile(cluster string) string {
	return filepath.Join(k.dir, clustersDir, cluster+".pub")
}

func seed(kp nkeys.KeyPair) []byte {
	s, _ := kp.Seed() // a pair created or loaded from a seed has one
	return s
}

// writeFile replaces path atomically, owner-readable only: most keystore
// files hold seeds.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	// A stale tmp of another mode would keep it: start from none.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrKeystore, err)
	}
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrKeystore, tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%w: rename %s: %w", ErrKeystore, tmp, err)
	}
	return nil
}
