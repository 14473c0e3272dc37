package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	containerdPath = "/usr/bin/containerd"
	ctrPath        = "/usr/bin/ctr"
	cniBinDir      = "/usr/lib/cni" // Debian's containernetworking-plugins
)

// containerdConfig is containerd 1.6 (Debian bookworm) configuration with
// every path inside the instance so that it never touches a system
// containerd's /var/lib/containerd.
func (in *instance) containerdConfig() string {
	d := in.l.ContainerdDir()
	return fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  enable_cdi = false
  # Without CAP_SYS_RESOURCE (CI VMs, nested containers) runc cannot apply the
  # pause sandbox's oom_score_adj of -998 and dies with "can't get final
  # child's PID from pipe: EOF". Clamp it to containerd's own value instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, filepath.Join(d, "root"), filepath.Join(d, "state"), in.l.ContainerdSocket(), PauseImage, cniBinDir, in.l.CNIConfDir())
}

// cniConfig is a bridge network on cni0 with masquerading; host-local keeps
// its leases inside the instance.
func (in *instance) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, CNINetworkName, CNIBridge, PodCIDR, in.l.CNIIPAMDir())
}

func (in *instance) kubeletConfig() string {
	pki := in.l.PKIDir()
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
# Kubernetes 1.34 is the last release that runs on cgroup v1 hosts (many CI
# VMs) without this; keep it explicit.
failCgroupV1: false
failSwapOn: false
tlsCertFile: %s
tlsPrivateKeyFile: %s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
clusterDomain: %s
resolvConf: /etc/resolv.conf
podLogsDir: %s
serializeImagePulls: false
# Images are imported, never pulled: garbage-collecting them would break the
# next pod, so image GC is effectively off.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
protectKernelDefaults: false
maxPods: 50
`, filepath.Join(pki, caCertFile), in.l.ContainerdSocket(), filepath.Join(pki, "kubelet-serving.crt"),
		filepath.Join(pki, "kubelet-serving.key"), clusterDomain, in.l.PodLogsDir())
}

func (in *instance) kubeProxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Zero values tell kube-proxy to leave the conntrack sysctls alone, and
# localhostNodePorts=false spares net.ipv4.conf.all.route_localnet: the test
# bed should change as little of the host as possible.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
`, in.l.Kubeconfig("kube-proxy"), ClusterCIDR, in.nodeName)
}

func writeFiles(files map[string]string) error {
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (in *instance) startContainerd(ctx context.Context) error {
	if err := writeFiles(map[string]string{
		in.l.ContainerdConfig(): in.containerdConfig(),
		filepath.Join(in.l.CNIConfDir(), "10-sc-testbed.conflist"): in.cniConfig(),
	}); err != nil {
		return err
	}
	if err := os.MkdirAll(in.l.CNIIPAMDir(), 0o755); err != nil {
		return err
	}
	p, err := in.start("containerd", "--config", in.l.ContainerdConfig())
	if err != nil {
		return err
	}
	return in.waitFor(ctx, p, 30*time.Second, "containerd socket", func(ctx context.Context) (bool, error) {
		return ctr(ctx, in.l, "version") == nil, nil
	})
}

// ctr runs containerd's CLI against the instance's containerd.
func ctr(ctx context.Context, l Layout, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctrPath, append([]string{"--address", l.ContainerdSocket(), "--namespace", CRINamespace}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// importImages loads docker-archive tarballs into the CRI namespace, where
// the kubelet finds them without pulling.
func importImages(ctx context.Context, l Layout, tars []string) error {
	for _, t := range tars {
		if err := ctr(ctx, l, "images", "import", t); err != nil {
			return fmt.Errorf("import %s: %w", t, err)
		}
	}
	return nil
}

func (in *instance) startKubelet() error {
	for _, d := range []string{in.l.KubeletRootDir(), in.l.PodLogsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := writeFiles(map[string]string{in.l.KubeletConfig(): in.kubeletConfig()}); err != nil {
		return err
	}
	_, err := in.start("kubelet", "--config="+in.l.KubeletConfig(), "--kubeconfig="+in.l.Kubeconfig("kubelet"),
		"--root-dir="+in.l.KubeletRootDir(), "--node-ip="+in.nodeIP.String(), "--hostname-override="+in.nodeName, "--v=2")
	return err
}

func (in *instance) startKubeProxy() error {
	if err := writeFiles(map[string]string{in.l.KubeProxyConfig(): in.kubeProxyConfig()}); err != nil {
		return err
	}
	_, err := in.start("kube-proxy", "--config="+in.l.KubeProxyConfig(), "--v=2")
	return err
}

// waitNodeReady waits until the node registered and reports Ready (CNI
// configured, runtime up).
func (in *instance) waitNodeReady(ctx context.Context) error {
	cs, err := in.clientset()
	if err != nil {
		return err
	}
	return in.waitFor(ctx, in.find("kubelet"), 2*time.Minute, "node "+in.nodeName+" Ready", func(ctx context.Context) (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, in.nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
}
