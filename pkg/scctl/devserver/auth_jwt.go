package devserver

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
)

// ErrNotJWT: the server runs in password mode and has no keystore.
var ErrNotJWT = errors.New("the server does not use JWT authentication")

// KeystoreDir is the jwt mode's keystore directory.
func (s *Server) KeystoreDir() string {
	if s.opts.Auth.KeystoreDir != "" {
		return s.opts.Auth.KeystoreDir
	}
	return credentialsDir(s.opts.StoreDir)
}

// Keystore opens the jwt mode's keystore. It is read afresh each time:
// `scctl cluster add|remove` change it while the server runs.
func (s *Server) Keystore() (*fleetauth.Keystore, error) {
	if !s.opts.Auth.JWT() {
		return nil, ErrNotJWT
	}
	k, err := fleetauth.Open(s.KeystoreDir(), ClusterPermissions)
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	return k, nil
}

// resolverDir holds the server's copy of the account JWTs (the full
// resolver's store), which pushed updates change.
func (s *Server) resolverDir() string { return filepath.Join(s.opts.StoreDir, "jwt") }

// configureJWT issues a user to every --cluster that has none (a restart
// issues nothing), writes each new one's Secret manifest, and has the
// server trust the keystore's operator. Provision then creates a consumer
// for every cluster the keystore lists, including those added at runtime.
func (s *Server) configureJWT(o *server.Options) error {
	k, err := s.Keystore()
	if err != nil {
		return err
	}
	for _, c := range s.opts.Clusters {
		creds, err := k.Issue(c)
		if errors.Is(err, fleetauth.ErrIssued) {
			continue
		}
		if err != nil {
			return fmt.Errorf("devserver: %w", err)
		}
		manifest, err := CredsSecretManifest(creds)
		if err != nil {
			return fmt.Errorf("devserver: %w", err)
		}
		if err := writeFile(KeystoreSecretManifestPath(k.Dir(), c), manifest); err != nil {
			return fmt.Errorf("devserver: %w", err)
		}
	}
	clusters, err := k.Clusters()
	if err != nil {
		return fmt.Errorf("devserver: %w", err)
	}
	u := users{Admin: Credentials{User: AdminUser}, Clusters: make(map[string]Credentials, len(clusters))}
	for _, c := range clusters {
		u.Clusters[c] = Credentials{User: UserName(c)}
	}
	// A Restart runs this again while Cluster and Admin may be read.
	s.mu.Lock()
	s.users = u
	s.mu.Unlock()
	if err := k.Configure(o, s.resolverDir()); err != nil {
		return fmt.Errorf("devserver: %w", err)
	}
	return nil
}

// CredsSecretManifest is a cluster's .creds as the Secret the chart reads
// with nats.credentialsSecret=sc-nats-credentials,
// nats.credentialsFormat=creds (key "creds").
func CredsSecretManifest(creds []byte) ([]byte, error) {
	s := corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: SecretName},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{"creds": string(creds)},
	}
	b, err := yaml.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode secret manifest: %w", err)
	}
	return b, nil
}

// KeystoreSecretManifestPath is where jwt mode keeps a cluster's creds
// Secret manifest: beside its keys in the keystore, where `scctl cluster
// add` writes it and `scctl cluster remove` deletes it, wherever
// --keystore puts the keystore.
func KeystoreSecretManifestPath(keystoreDir, cluster string) string {
	return filepath.Join(keystoreDir, cluster+"-nats-secret.yaml")
}

// SecretManifest is where this server wrote cluster's Secret manifest.
func (s *Server) SecretManifest(cluster string) string {
	if s.opts.Auth.JWT() {
		return KeystoreSecretManifestPath(s.KeystoreDir(), cluster)
	}
	return SecretManifestPath(s.opts.StoreDir, cluster)
}
