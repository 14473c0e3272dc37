package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
)

// kindClusterName is the kind cluster Full creates and reuses.
const kindClusterName = "sc-testbed"

// dockerAvailable reports whether a Docker engine answers. Only then is kind
// an option: kind cannot work without one.
func dockerAvailable(ctx context.Context) bool {
	if _, err := exec.LookPath("docker"); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "docker", "info").Run() == nil
}

// kindProvider creates (once) a kind cluster and loads the image tarballs of
// _output/images into its nodes, for developers with Docker. Untested in
// the project's Docker-less CI; see docs/testbed.md.
type kindProvider struct{ p *cluster.Provider }

func (k *kindProvider) name() string { return "kind cluster " + kindClusterName }

func (k *kindProvider) connect(ctx context.Context) (string, error) {
	k.p = cluster.NewProvider(cluster.ProviderWithDocker())
	kc := filepath.Join(CacheDir(), "kind-"+kindClusterName+".kubeconfig")
	if err := os.MkdirAll(filepath.Dir(kc), 0o755); err != nil {
		return "", err
	}
	names, err := k.p.List()
	if err != nil {
		return "", fmt.Errorf("kind list: %w", err)
	}
	if slices.Contains(names, kindClusterName) {
		if err := k.p.ExportKubeConfig(kindClusterName, kc, false); err != nil {
			return "", fmt.Errorf("kind export kubeconfig: %w", err)
		}
	} else if err := k.p.Create(kindClusterName,
		cluster.CreateWithWaitForReady(5*time.Minute),
		cluster.CreateWithKubeconfigPath(kc),
		cluster.CreateWithDisplayUsage(false),
		cluster.CreateWithDisplaySalutation(false)); err != nil {
		return "", fmt.Errorf("kind create: %w", err)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	nodes, err := k.p.ListInternalNodes(kindClusterName)
	if err != nil {
		return "", fmt.Errorf("kind nodes: %w", err)
	}
	for _, tar := range ImageTarballs(filepath.Join(root, "_output", "images")) {
		for _, n := range nodes {
			if err := loadArchive(n, tar); err != nil {
				return "", fmt.Errorf("kind load %s into %s: %w", tar, n.String(), err)
			}
		}
	}
	return kc, nil
}

func loadArchive(n nodes.Node, tar string) error {
	f, err := os.Open(tar)
	if err != nil {
		return err
	}
	defer f.Close()
	return nodeutils.LoadImageArchive(n, f)
}

func (k *kindProvider) dumpComponentLogs(_ context.Context, dir string) error {
	if k.p == nil {
		return nil
	}
	return k.p.CollectLogs(kindClusterName, dir)
}
