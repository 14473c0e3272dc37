//go:build e2e

package testbed

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/kubernetes"
)

func TestEnsurePKIIssuesVerifiableCerts(t *testing.T) {
	dir := t.TempDir()
	ip := net.ParseIP("192.0.2.2").To4()
	specs := clusterCerts("node-a", ip)
	if err := ensurePKI(dir, specs); err != nil {
		t.Fatal(err)
	}
	ca, err := loadCert(filepath.Join(dir, caCertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA {
		t.Fatal("CA certificate is not a CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, s := range specs {
		c, err := loadCert(filepath.Join(dir, s.Name+".crt"))
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		var usages []x509.ExtKeyUsage
		if s.Server {
			usages = append(usages, x509.ExtKeyUsageServerAuth)
		}
		if s.Client {
			usages = append(usages, x509.ExtKeyUsageClientAuth)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: usages}); err != nil {
			t.Errorf("%s does not verify for %v: %v", s.Name, usages, err)
		}
		if c.Subject.CommonName != s.CN {
			t.Errorf("%s: CN %q, want %q", s.Name, c.Subject.CommonName, s.CN)
		}
	}
	api, _ := loadCert(filepath.Join(dir, "apiserver.crt"))
	for _, host := range []string{"127.0.0.1", "10.96.0.1", "192.0.2.2", "kubernetes.default.svc", "localhost"} {
		if err := api.VerifyHostname(host); err != nil {
			t.Errorf("apiserver cert not valid for %s: %v", host, err)
		}
	}
	kubelet, _ := loadCert(filepath.Join(dir, "kubelet.crt"))
	if kubelet.Subject.CommonName != "system:node:node-a" || len(kubelet.Subject.Organization) != 1 || kubelet.Subject.Organization[0] != "system:nodes" {
		t.Errorf("kubelet client identity %v is not what the Node authorizer expects", kubelet.Subject)
	}
	if _, err := os.Stat(filepath.Join(dir, saPubFile)); err != nil {
		t.Error(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, caKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("CA key mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestEnsurePKIReusesValidAndReissuesChanged(t *testing.T) {
	dir := t.TempDir()
	if err := ensurePKI(dir, clusterCerts("node-a", net.ParseIP("192.0.2.2"))); err != nil {
		t.Fatal(err)
	}
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ca, admin, api, sa := read("ca.crt"), read("admin.crt"), read("apiserver.crt"), read("sa.key")

	// Same specs: nothing changes (kubeconfigs handed out stay valid).
	if err := ensurePKI(dir, clusterCerts("node-a", net.ParseIP("192.0.2.2"))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca, read("ca.crt")) || !bytes.Equal(admin, read("admin.crt")) || !bytes.Equal(api, read("apiserver.crt")) || !bytes.Equal(sa, read("sa.key")) {
		t.Fatal("unchanged specs re-issued certificates")
	}
	// The node address changed: the serving certs follow, the rest stays.
	if err := ensurePKI(dir, clusterCerts("node-a", net.ParseIP("192.0.2.3"))); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(api, read("apiserver.crt")) {
		t.Error("apiserver cert not re-issued for the new node IP")
	}
	if !bytes.Equal(admin, read("admin.crt")) || !bytes.Equal(ca, read("ca.crt")) {
		t.Error("certs unrelated to the node IP were re-issued")
	}
}

// TestKubeconfigAuthenticatesAgainstTLSServer writes the admin kubeconfig and
// uses it, through client-go, against a TLS server that serves the
// apiserver certificate and demands client certificates from the CA: the
// same handshake a real apiserver performs.
func TestKubeconfigAuthenticatesAgainstTLSServer(t *testing.T) {
	dir := t.TempDir()
	l := Layout{Dir: dir}
	if err := ensurePKI(l.PKIDir(), clusterCerts("node-a", nil)); err != nil {
		t.Fatal(err)
	}
	ca, _ := loadCert(filepath.Join(l.PKIDir(), caCertFile))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	serving, err := tls.LoadX509KeyPair(filepath.Join(l.PKIDir(), "apiserver.crt"), filepath.Join(l.PKIDir(), "apiserver.key"))
	if err != nil {
		t.Fatal(err)
	}
	var gotCN, gotOrg string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.TLS.PeerCertificates[0]
		gotCN, gotOrg = c.Subject.CommonName, c.Subject.Organization[0]
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"major":"1","minor":"34","gitVersion":"v1.34.4"}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serving}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	// The server URL is https://127.0.0.1:PORT, a SAN of the apiserver cert.
	if err := writeKubeconfigs(l, srv.URL); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{l.AdminKubeconfig(), l.Kubeconfig("kubelet"), l.Kubeconfig("kube-proxy")} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, err, fi)
		}
	}
	cfg, err := restConfigFromKubeconfig(l.AdminKubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("request with the admin kubeconfig: %v", err)
	}
	if v.GitVersion != "v1.34.4" || gotCN != "sc-testbed-admin" || gotOrg != "system:masters" {
		t.Errorf("got version %q as %s/%s", v.GitVersion, gotCN, gotOrg)
	}
}
