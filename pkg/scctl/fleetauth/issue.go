package fleetauth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// Issue creates a user for cluster in the application account, signed by
// the account's signing key and confined to the cluster's permissions, and
// returns its .creds file (JWT and seed). The seed is not kept: the
// keystore records only the user's public key, which Revoke needs.
func (k *Keystore) Issue(cluster string) ([]byte, error) {
	if err := protocol.ValidateCluster(cluster); err != nil {
		return nil, fmt.Errorf("issue credentials: %w", err)
	}
	perms := UserPermissions(k.perms(cluster))
	var creds []byte
	err := k.locked(func() error {
		if _, err := os.Stat(k.clusterFile(cluster)); err == nil {
			return fmt.Errorf("cluster %s: %w", cluster, ErrIssued)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %w", ErrKeystore, err)
		}
		// An agent dials as a plain client: never as a leaf node, over a
		// websocket or MQTT, should an operator enable those listeners.
		c, pub, err := k.newUser(k.signing, k.accountPub, "agent-"+cluster, &perms, jwt.ConnectionTypeStandard)
		if err != nil {
			return err
		}
		creds = c
		return writeFile(k.clusterFile(cluster), []byte(pub))
	})
	if err != nil {
		return nil, err
	}
	return creds, nil
}

// Revoke adds cluster's user to the account's revocations and stores the
// re-signed account JWT, which it returns for PushAccount. The cluster
// stays listed until Forget, so a push that failed can be retried by
// revoking again.
func (k *Keystore) Revoke(cluster string) (string, error) {
	var out string
	err := k.locked(func() error {
		pub, err := k.UserPublicKey(cluster)
		if err != nil {
			return err
		}
		ac, err := k.account()
		if err != nil {
			return err
		}
		// Every JWT of this user issued up to now is revoked; its next
		// connect is refused and the server closes its live ones.
		ac.Revoke(pub)
		if out, err = ac.Encode(k.operator); err != nil {
			return fmt.Errorf("%w: sign account: %w", ErrKeystore, err)
		}
		return writeFile(k.path(accountJWTFile), []byte(out))
	})
	return out, err
}

// Forget drops cluster from the keystore once its revocation has been
// pushed; its user's revocation stays in the account JWT.
func (k *Keystore) Forget(cluster string) error {
	return k.locked(func() error {
		if err := os.Remove(k.clusterFile(cluster)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %w", ErrKeystore, err)
		}
		return nil
	})
}

// newUser creates a user key and its JWT, signed by signer on behalf of
// issuerAccount (empty: signer is the account's identity key).
func (k *Keystore) newUser(signer nkeys.KeyPair, issuerAccount, name string, perms *jwt.Permissions, connTypes ...string) ([]byte, string, error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", fmt.Errorf("%w: user key: %w", ErrKeystore, err)
	}
	pub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	uc.IssuerAccount = issuerAccount
	if perms != nil {
		uc.Permissions = *perms
	}
	uc.AllowedConnectionTypes.Add(connTypes...)
	token, err := uc.Encode(signer)
	if err != nil {
		return nil, "", fmt.Errorf("%w: sign user %s: %w", ErrKeystore, name, err)
	}
	creds, err := jwt.FormatUserConfig(token, seed(user))
	if err != nil {
		return nil, "", fmt.Errorf("%w: format creds of %s: %w", ErrKeystore, name, err)
	}
	return creds, pub, nil
}

func (k *Keystore) userCreds(signer nkeys.KeyPair, issuerAccount, name string, perms *jwt.Permissions) ([]byte, error) {
	creds, _, err := k.newUser(signer, issuerAccount, name, perms)
	return creds, err
}

// UserPermissions converts a server-side permission set (what a
// user/password server configures) into a user JWT's, unchanged: the same
// allow lists and the same response permission.
func UserPermissions(p *server.Permissions) jwt.Permissions {
	var out jwt.Permissions
	if p == nil {
		return out
	}
	if p.Publish != nil {
		out.Pub = jwt.Permission{Allow: jwt.StringList(p.Publish.Allow), Deny: jwt.StringList(p.Publish.Deny)}
	}
	if p.Subscribe != nil {
		out.Sub = jwt.Permission{Allow: jwt.StringList(p.Subscribe.Allow), Deny: jwt.StringList(p.Subscribe.Deny)}
	}
	if p.Response != nil {
		out.Resp = &jwt.ResponsePermission{MaxMsgs: p.Response.MaxMsgs, Expires: p.Response.Expires}
	}
	return out
}
