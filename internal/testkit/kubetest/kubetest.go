package kubetest

import (
	"path/filepath"
	"testing"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/sc-extension/sc-extension/e2e/testbed"
)

// Run is TestMain's body: it starts the package's private API server, runs
// the tests, stops the server and returns the exit code (E2E_KUBECONFIG
// replaces the private server by that cluster).
func Run(m *testing.M) int { return testbed.RunWithAPI(m) }

// Clients are cluster-admin clients on the package's API server.
type Clients struct {
	// Config is the configuration the clients were built from: a copy the
	// test may change to build more clients (it is not shared with them).
	Config    *rest.Config
	Clientset kubernetes.Interface
	Dynamic   dynamic.Interface
}

// Option adjusts the configuration before the clients are built.
type Option func(*rest.Config)

// QPS raises client-go's default rate limit (5 QPS, burst 10), which lets a
// test's own polling starve controllers that share the client.
func QPS(qps float32, burst int) Option {
	return func(c *rest.Config) { c.QPS, c.Burst = qps, burst }
}

// Warnings routes the API server's warnings (Pod Security admission reports
// templates through them) to h.
func Warnings(h rest.WarningHandler) Option {
	return func(c *rest.Config) { c.WarningHandler = h }
}

// New returns clients on the package's API server; t.Fatal if TestMain did
// not call Run.
func New(t testing.TB, opts ...Option) *Clients {
	t.Helper()
	cfg := testbed.APIConfig(t)
	for _, o := range opts {
		o(cfg)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("kubetest: clientset: %v", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("kubetest: dynamic client: %v", err)
	}
	return &Clients{Config: rest.CopyConfig(cfg), Clientset: cs, Dynamic: dyn}
}

// Kubeconfig writes a kubeconfig file for the package's API server into
// t.TempDir and returns its path, for binaries run as a user would run them
// (--kubeconfig).
func Kubeconfig(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(kubeconfigFor(testbed.APIConfig(t)), path); err != nil {
		t.Fatalf("kubetest: write kubeconfig: %v", err)
	}
	return path
}

// kubeconfigFor carries every way a rest.Config can hold its credentials:
// inline data and file paths alike.
func kubeconfigFor(cfg *rest.Config) clientcmdapi.Config {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{
		Server: cfg.Host, CertificateAuthorityData: cfg.CAData, CertificateAuthority: cfg.CAFile,
		InsecureSkipTLSVerify: cfg.Insecure,
	}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData, ClientCertificate: cfg.CertFile,
		ClientKeyData: cfg.KeyData, ClientKey: cfg.KeyFile, Token: cfg.BearerToken,
	}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	return *kc
}
