package cli

import (
	"fmt"
	"net"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

// addServerClusterFlags adds `scctl server`'s JetStream cluster flags. The
// NATS cluster these name is the control plane's own servers, not the AKS
// clusters --cluster names. How the flags go together (a server name with
// a cluster name, and so on) is devserver.ClusterOptions.Validate's to say.
func addServerClusterFlags(fs *pflag.FlagSet, o *devserver.ClusterOptions) {
	fs.StringVar(&o.Name, "cluster-name", "", "join a JetStream cluster of this name (the control plane's NATS servers, every node the same); empty: a single server")
	fs.StringVar(&o.ServerName, "server-name", "", "this node's name in the JetStream cluster, unique and the same across restarts")
	fs.Var(listenValue{&o.Listen}, "cluster-listen", "host:port the other nodes' routes dial (a fixed port)")
	fs.Var(&routesValue{&o.Routes}, "cluster-peers", "the nodes' route URLs, comma-separated or repeated (nats-route://host:port; this node's own may be listed)")
	fs.Var(listenValue{&o.LeafListen}, "leaf-listen", "host:port where edge clusters' leaf nodes dial in (each as its cluster's user); nothing dials out to them")
	fs.IntVar(&o.Replicas, "replicas", 0, "replicas of the request and status streams (1 to 5; default 1 alone, 3 in a cluster)")
}

// listenValue refuses an address without a port at parse time, so the
// mistake is a usage error.
type listenValue struct{ p *string }

func (v listenValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v listenValue) Set(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	*v.p = s
	return nil
}

func (listenValue) Type() string { return "host:port" }

// routesValue accumulates route URLs from a comma-separated list or
// repeated flags.
type routesValue struct{ p *[]string }

func (v *routesValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

func (v *routesValue) Set(s string) error {
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if !strings.HasPrefix(r, "nats-route://") {
			return fmt.Errorf("%q: want nats-route://host:port", r)
		}
		if _, _, err := net.SplitHostPort(strings.TrimPrefix(r, "nats-route://")); err != nil {
			return fmt.Errorf("%q: want nats-route://host:port: %w", r, err)
		}
		*v.p = append(*v.p, r)
	}
	return nil
}

func (*routesValue) Type() string { return "urls" }
