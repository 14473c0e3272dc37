package testbed

import (
	"os"
	"path/filepath"
)

// Fixed network parameters of every cluster the test bed creates. They never
// leave the machine: service and pod ranges only exist in iptables rules and
// on the cni0 bridge.
const (
	ServiceCIDR     = "10.96.0.0/12"
	ServiceIP       = "10.96.0.1" // first address of ServiceCIDR: the `kubernetes` Service
	ClusterCIDR     = "10.244.0.0/16"
	PodCIDR         = "10.244.0.0/24"
	CNINetworkName  = "sc-testbed"
	CNIBridge       = "cni0"
	CRINamespace    = "k8s.io"
	PauseImage      = "localhost/sc-extension/pause:dev"
	ProbeImage      = "localhost/sc-extension/probe:dev"
	clusterDomain   = "cluster.local"
	saIssuer        = "https://kubernetes.default.svc.cluster.local"
	fullAPIPort     = 6443
	fullEtcdPort    = 2379
	fullEtcdPeerPrt = 2380
)

// Layout names every file of one test-bed instance. All of an instance's
// state lives below Dir so that teardown can recognise its own processes and
// mounts by that path alone.
type Layout struct{ Dir string }

// DefaultStateDir is where `make cluster` keeps its cluster. It is outside the
// repository (a git clean must not destroy a running cluster's etcd) and can
// be moved with SC_TESTBED_DIR.
func DefaultStateDir() string {
	if d := os.Getenv("SC_TESTBED_DIR"); d != "" {
		return d
	}
	return "/var/tmp/sc-testbed"
}

func (l Layout) path(p ...string) string { return filepath.Join(append([]string{l.Dir}, p...)...) }

func (l Layout) PKIDir() string                { return l.path("pki") }
func (l Layout) LogsDir() string               { return l.path("logs") }
func (l Layout) PidsDir() string               { return l.path("pids") }
func (l Layout) EtcdDataDir() string           { return l.path("etcd-data") }
func (l Layout) KubeconfigDir() string         { return l.path("kubeconfigs") }
func (l Layout) StateFile() string             { return l.path("cluster.json") }
func (l Layout) BaselineFile() string          { return l.path("baseline.json") }
func (l Layout) ContainerdDir() string         { return l.path("containerd") }
func (l Layout) ContainerdConfig() string      { return l.path("containerd", "config.toml") }
func (l Layout) ContainerdSocket() string      { return l.path("containerd", "containerd.sock") }
func (l Layout) CNIConfDir() string            { return l.path("cni", "net.d") }
func (l Layout) CNIIPAMDir() string            { return l.path("cni", "ipam") }
func (l Layout) KubeletDir() string            { return l.path("kubelet") }
func (l Layout) KubeletRootDir() string        { return l.path("kubelet", "root") }
func (l Layout) KubeletConfig() string         { return l.path("kubelet", "config.yaml") }
func (l Layout) PodLogsDir() string            { return l.path("kubelet", "pod-logs") }
func (l Layout) KubeProxyConfig() string       { return l.path("kube-proxy.yaml") }
func (l Layout) Kubeconfig(user string) string { return l.path("kubeconfigs", user+".kubeconfig") }

// AdminKubeconfig is the cluster-admin kubeconfig, at a short path because
// users type it.
func (l Layout) AdminKubeconfig() string { return l.path("kubeconfig") }

// LogFile and PidFile of a component.
func (l Layout) LogFile(component string) string { return l.path("logs", component+".log") }
func (l Layout) PidFile(component string) string { return l.path("pids", component+".json") }

// dataDirs are wiped by a teardown so that the next start is a fresh cluster;
// PKI and kubeconfigs survive so that copied kubeconfigs stay valid.
func (l Layout) dataDirs() []string {
	return []string{l.EtcdDataDir(), l.ContainerdDir(), l.path("cni"), l.KubeletDir(), l.PidsDir(), l.StateFile(), l.KubeProxyConfig()}
}
