package testbed

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// hostPackages are the Debian packages full mode needs, each with a file
// that proves it is installed (checking a file is instant, dpkg-query is not).
var hostPackages = []struct{ pkg, file string }{
	{"containerd", containerdPath},
	{"runc", "/usr/sbin/runc"},
	{"containernetworking-plugins", cniBinDir + "/bridge"},
	{"iptables", "/usr/sbin/iptables"},
	{"conntrack", "/usr/sbin/conntrack"},
	{"socat", "/usr/bin/socat"},
	{"ebtables", "/usr/sbin/ebtables"},
	{"ethtool", "/usr/sbin/ethtool"},
	{"iproute2", "/usr/sbin/ip"},
}

// ensureHostPackages installs the missing packages with apt-get. The package
// index is refreshed only when something is missing, so warm starts do not
// touch the network.
func ensureHostPackages(ctx context.Context, progress io.Writer) error {
	var missing []string
	for _, p := range hostPackages {
		if _, err := os.Stat(p.file); err != nil {
			missing = append(missing, p.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(progress, "testbed: installing %v with apt-get\n", missing)
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = progress, progress
		return cmd.Run()
	}
	if err := run("update"); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	if err := run(append([]string{"install", "-y", "--no-install-recommends"}, missing...)...); err != nil {
		return fmt.Errorf("apt-get install %v: %w", missing, err)
	}
	return nil
}
