package testbed

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeKubeconfig writes a kubeconfig for the client certificate pkiDir/cert
// (.crt/.key) against server. Credentials are embedded so that the file can
// be copied elsewhere (CI artifacts, another user) and still work.
func writeKubeconfig(path, server, pkiDir, cert string) error {
	ca, err := os.ReadFile(filepath.Join(pkiDir, caCertFile))
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	crt, err := os.ReadFile(filepath.Join(pkiDir, cert+".crt"))
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	key, err := os.ReadFile(filepath.Join(pkiDir, cert+".key"))
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	const name = "sc-testbed"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[cert] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: cert}
	cfg.CurrentContext = name
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

// restConfigFromKubeconfig loads a kubeconfig with settings suited to tests:
// client-side rate limiting is raised so that it never paces a test.
func restConfigFromKubeconfig(path string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	return cfg, nil
}

// componentKubeconfigs maps each component's kubeconfig to its certificate.
var componentKubeconfigs = map[string]string{
	"admin":              "admin",
	"controller-manager": "controller-manager",
	"scheduler":          "scheduler",
	"kubelet":            "kubelet",
	"kube-proxy":         "kube-proxy",
}

// writeKubeconfigs writes the admin kubeconfig (at its short path) and every
// component's kubeconfig of layout l against server.
func writeKubeconfigs(l Layout, server string) error {
	for user, cert := range componentKubeconfigs {
		if err := writeKubeconfig(l.Kubeconfig(user), server, l.PKIDir(), cert); err != nil {
			return err
		}
	}
	return writeKubeconfig(l.AdminKubeconfig(), server, l.PKIDir(), "admin")
}
