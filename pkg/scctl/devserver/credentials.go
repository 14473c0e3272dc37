package devserver

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Credentials is a NATS user and password.
type Credentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// String never prints the password.
func (c Credentials) String() string { return c.User + ":<redacted>" }

// AdminUser is the control plane's (scctl's) NATS user.
const AdminUser = "admin"

// SecretName is the Secret the chart reads with
// nats.credentialsSecret=sc-nats-credentials, nats.credentialsFormat=userPassword.
const SecretName = "sc-nats-credentials"

// users is persisted so that a restart on the same StoreDir keeps every
// password an agent or scctl has been given.
type users struct {
	Admin    Credentials            `json:"admin"`
	Clusters map[string]Credentials `json:"clusters"`
}

func credentialsDir(storeDir string) string { return filepath.Join(storeDir, "credentials") }

// loadOrCreateUsers reads the persisted users and adds any cluster (or
// admin) that has none yet.
func loadOrCreateUsers(storeDir string, clusters []string, adminPassword string) (users, error) {
	path := filepath.Join(credentialsDir(storeDir), "users.json")
	var u users
	switch b, err := os.ReadFile(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return users{}, fmt.Errorf("read %s: %w", path, err)
	default:
		if err := json.Unmarshal(b, &u); err != nil {
			return users{}, fmt.Errorf("parse %s: %w", path, err)
		}
	}
	if u.Clusters == nil {
		u.Clusters = map[string]Credentials{}
	}
	if adminPassword != "" {
		u.Admin = Credentials{User: AdminUser, Password: adminPassword}
	}
	if u.Admin.Password == "" {
		u.Admin = Credentials{User: AdminUser, Password: randomPassword()}
	}
	for _, c := range clusters {
		if _, ok := u.Clusters[c]; !ok {
			u.Clusters[c] = Credentials{User: UserName(c), Password: randomPassword()}
		}
	}
	if err := writeUsers(storeDir, u); err != nil {
		return users{}, err
	}
	return u, nil
}

func writeUsers(storeDir string, u users) error {
	dir := credentialsDir(storeDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(u, "", "  ")
	if err != nil {
		return fmt.Errorf("encode users: %w", err)
	}
	if err := writeFile(filepath.Join(dir, "users.json"), b); err != nil {
		return err
	}
	for c, cred := range u.Clusters {
		manifest, err := secretManifest(cred)
		if err != nil {
			return err
		}
		if err := writeFile(SecretManifestPath(storeDir, c), manifest); err != nil {
			return err
		}
	}
	return nil
}

// SecretManifestPath is where Start writes a cluster's credentials as a
// Kubernetes Secret manifest for `kubectl apply -n sc-system -f`.
func SecretManifestPath(storeDir, cluster string) string {
	return filepath.Join(credentialsDir(storeDir), cluster+"-nats-secret.yaml")
}

func secretManifest(c Credentials) ([]byte, error) {
	s := corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: SecretName},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{"user": c.User, "password": c.Password},
	}
	b, err := yaml.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode secret manifest: %w", err)
	}
	return b, nil
}

// writeFile replaces path atomically with owner-only permissions: these
// files hold passwords.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

func randomPassword() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}
