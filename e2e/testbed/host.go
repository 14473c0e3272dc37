package testbed

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// nodeIP returns the machine's own IPv4 address that the node registers and
// the apiserver advertises. Kubernetes refuses loopback for both, and pods
// reach the apiserver through it (Service 10.96.0.1 is DNATed to it), so it
// must be a real local address; eth0 is preferred, then the first global
// IPv4 address. SC_TESTBED_NODE_IP overrides the detection.
func nodeIP() (net.IP, error) {
	if s := os.Getenv("SC_TESTBED_NODE_IP"); s != "" {
		ip := net.ParseIP(s)
		if ip == nil || ip.To4() == nil {
			return nil, fmt.Errorf("SC_TESTBED_NODE_IP=%q is not an IPv4 address", s)
		}
		return ip.To4(), nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var first net.IP
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Name == CNIBridge || strings.HasPrefix(ifc.Name, "veth") {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil || !ipn.IP.IsGlobalUnicast() {
				continue
			}
			if ifc.Name == "eth0" {
				return ipn.IP.To4(), nil
			}
			if first == nil {
				first = ipn.IP.To4()
			}
		}
	}
	if first == nil {
		return nil, errors.New("no non-loopback IPv4 address on this machine (set SC_TESTBED_NODE_IP)")
	}
	return first, nil
}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// nodeName is the lower-cased host name when it is a valid node name.
func nodeName() string {
	h, err := os.Hostname()
	h = strings.ToLower(h)
	if err != nil || len(h) > 63 || !dns1123.MatchString(h) {
		return "sc-testbed-node"
	}
	return h
}

// repoRoot finds the repository root (the directory whose go.mod declares the
// product module) from the working directory upwards: `go test` runs in the
// package directory, `make` at the root.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module "+productModule+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", productModule)
		}
		dir = parent
	}
}

const productModule = "github.com/sc-extension/sc-extension"

// RepoRoot is repoRoot for the CLIs.
func RepoRoot() (string, error) { return repoRoot() }
