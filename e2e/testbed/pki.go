package testbed

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// certSpec is one leaf certificate of the cluster PKI.
type certSpec struct {
	Name   string // file base name: Name.crt, Name.key
	CN     string // Kubernetes user name for client certs
	Orgs   []string
	DNS    []string
	IPs    []net.IP
	Server bool
	Client bool
}

// PKI file names inside Layout.PKIDir.
const (
	caCertFile = "ca.crt"
	caKeyFile  = "ca.key"
	saKeyFile  = "sa.key"
	saPubFile  = "sa.pub"
)

// certValidity is long enough for any test run, short enough not to matter
// if a key leaks from /var/tmp.
const certValidity = 365 * 24 * time.Hour

// clusterCerts lists the certificates of a cluster whose node is nodeName at
// nodeIP (nodeIP may be nil in api mode).
func clusterCerts(nodeName string, nodeIP net.IP) []certSpec {
	apiIPs := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(ServiceIP)}
	nodeIPs := []net.IP{net.ParseIP("127.0.0.1")}
	if nodeIP != nil {
		apiIPs = append(apiIPs, nodeIP)
		nodeIPs = append(nodeIPs, nodeIP)
	}
	return []certSpec{
		{Name: "apiserver", CN: "kube-apiserver", Server: true,
			DNS: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + clusterDomain, "localhost", nodeName},
			IPs: apiIPs},
		{Name: "admin", CN: "sc-testbed-admin", Orgs: []string{"system:masters"}, Client: true},
		// The apiserver's identity towards kubelets (logs, exec).
		{Name: "apiserver-kubelet-client", CN: "kube-apiserver-kubelet-client", Orgs: []string{"system:masters"}, Client: true},
		{Name: "controller-manager", CN: "system:kube-controller-manager", Client: true},
		{Name: "scheduler", CN: "system:kube-scheduler", Client: true},
		{Name: "kubelet", CN: "system:node:" + nodeName, Orgs: []string{"system:nodes"}, Client: true},
		{Name: "kubelet-serving", CN: nodeName, DNS: []string{nodeName, "localhost"}, IPs: nodeIPs, Server: true},
		{Name: "kube-proxy", CN: "system:kube-proxy", Client: true},
	}
}

// ensurePKI creates the CA, the service-account key pair and every leaf in
// dir, keeping files that are still valid for their spec (so a restart does
// not invalidate kubeconfigs handed out before) and re-issuing the others,
// e.g. after the node's address changed.
func ensurePKI(dir string, specs []certSpec) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	ca, caKey, err := loadOrCreateCA(dir)
	if err != nil {
		return err
	}
	if _, err := loadKey(filepath.Join(dir, saKeyFile)); err != nil {
		key, err := newKey()
		if err != nil {
			return err
		}
		if err := writeKey(filepath.Join(dir, saKeyFile), key); err != nil {
			return err
		}
		pub, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			return fmt.Errorf("pki: %w", err)
		}
		if err := writePEM(filepath.Join(dir, saPubFile), "PUBLIC KEY", pub, 0o644); err != nil {
			return err
		}
	}
	for _, s := range specs {
		if certMatches(dir, s, ca) {
			continue
		}
		if err := issue(dir, s, ca, caKey); err != nil {
			return err
		}
	}
	return nil
}

func loadOrCreateCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	cert, err1 := loadCert(filepath.Join(dir, caCertFile))
	key, err2 := loadKey(filepath.Join(dir, caKeyFile))
	if err1 == nil && err2 == nil && time.Until(cert.NotAfter) > 24*time.Hour {
		return cert, key, nil
	}
	newCAKey, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	key = newCAKey
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "sc-testbed-ca"},
		NotBefore:             time.Now().Add(-time.Hour), // tolerate clock skew
		NotAfter:              time.Now().Add(10 * certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: create CA: %w", err)
	}
	if err := writeKey(filepath.Join(dir, caKeyFile), newCAKey); err != nil {
		return nil, nil, err
	}
	if err := writePEM(filepath.Join(dir, caCertFile), "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	cert, err = x509.ParseCertificate(der)
	return cert, key, err
}

func issue(dir string, s certSpec, ca *x509.Certificate, caKey crypto.Signer) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: s.CN, Organization: s.Orgs},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		DNSNames:              s.DNS,
		IPAddresses:           s.IPs,
	}
	if s.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if s.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("pki: issue %s: %w", s.Name, err)
	}
	if err := writeKey(filepath.Join(dir, s.Name+".key"), key); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, s.Name+".crt"), "CERTIFICATE", der, 0o644)
}

// certMatches reports whether dir holds a certificate for s, signed by ca,
// with the same subject and SANs, valid for at least another day, whose key
// file matches.
func certMatches(dir string, s certSpec, ca *x509.Certificate) bool {
	c, err := loadCert(filepath.Join(dir, s.Name+".crt"))
	if err != nil {
		return false
	}
	k, err := loadKey(filepath.Join(dir, s.Name+".key"))
	if err != nil {
		return false
	}
	pub, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(k.Public()) {
		return false
	}
	if c.CheckSignatureFrom(ca) != nil || time.Until(c.NotAfter) < 24*time.Hour {
		return false
	}
	if c.Subject.CommonName != s.CN || !slices.Equal(c.Subject.Organization, s.Orgs) || !slices.Equal(c.DNSNames, s.DNS) {
		return false
	}
	if len(c.IPAddresses) != len(s.IPs) {
		return false
	}
	for i := range s.IPs {
		if !c.IPAddresses[i].Equal(s.IPs[i]) {
			return false
		}
	}
	return true
}

// ECDSA P-256 everywhere: every Kubernetes component and the service-account
// token signer (ES256) accept it, and generating it is ~1000x faster than RSA,
// which matters because every test binary creates a fresh PKI.
func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate key: %w", err)
	}
	return k, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		return nil, fmt.Errorf("%s: no %s PEM block", path, typ)
	}
	return blk.Bytes, nil
}

func loadCert(path string) (*x509.Certificate, error) {
	der, err := readPEM(path, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func loadKey(path string) (crypto.Signer, error) {
	der, err := readPEM(path, "EC PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParseECPrivateKey(der)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, errors.New("empty key")
	}
	return k, nil
}
