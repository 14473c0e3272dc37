// Package tlstest writes throwaway certificate authorities and
// certificates for tests of TLS connections: a CA, a server certificate
// for 127.0.0.1/localhost and a client certificate signed by it, plus a
// second, unrelated CA with its own client certificate.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// PKI holds the paths of the PEM files New wrote.
type PKI struct {
	Dir                   string
	CAFile                string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	// OtherCAFile is a CA that signed neither the server nor the client
	// certificate; OtherClientCert/Key are signed by it.
	OtherCAFile                     string
	OtherClientCert, OtherClientKey string
}

type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// New writes a fresh PKI into a t.TempDir().
func New(t testing.TB) PKI {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t, "sc-test-ca")
	other := newCA(t, "sc-test-other-ca")
	p := PKI{Dir: dir,
		CAFile: filepath.Join(dir, "ca.crt"), ServerCert: filepath.Join(dir, "server.crt"), ServerKey: filepath.Join(dir, "server.key"),
		ClientCert: filepath.Join(dir, "client.crt"), ClientKey: filepath.Join(dir, "client.key"),
		OtherCAFile: filepath.Join(dir, "other-ca.crt"), OtherClientCert: filepath.Join(dir, "other-client.crt"), OtherClientKey: filepath.Join(dir, "other-client.key"),
	}
	writeCert(t, p.CAFile, ca.cert.Raw)
	writeCert(t, p.OtherCAFile, other.cert.Raw)
	leaf(t, ca, p.ServerCert, p.ServerKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	leaf(t, ca, p.ClientCert, p.ClientKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "sc-test-client"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	leaf(t, other, p.OtherClientCert, p.OtherClientKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "sc-test-intruder"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return p
}

func newCA(t testing.TB, name string) authority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return authority{cert: cert, key: key}
}

func leaf(t testing.TB, ca authority, certPath, keyPath string, tmpl *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl.SerialNumber = serial(t)
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	writeCert(t, certPath, der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
}

func writeCert(t testing.TB, path string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	require.NoError(t, err)
	return n
}
