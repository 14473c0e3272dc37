package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

// serveDev is App.Serve's production value: it runs pkg/scctl/devserver until ctx
// ends and tells the user how to point the chart and scctl at it.
func serveDev(ctx context.Context, o ServerOptions, out io.Writer) error {
	host, portText, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return usagef("--listen: %v", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return usagef("--listen: port %q is not a number from 0 to 65535", portText)
	}
	if o.StoreDir == "" {
		if o.StoreDir, err = os.MkdirTemp("", "scctl-server-"); err != nil {
			return fmt.Errorf("create a store directory: %w", err)
		}
	}
	if host == "" {
		host = "0.0.0.0"
	}
	srv, err := devserver.Start(ctx, devserver.Options{
		Host: host, Port: port, StoreDir: o.StoreDir, Clusters: o.Clusters, TLS: o.TLS,
		Auth: o.Auth, Cluster: o.Cluster,
		Logger: zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().Timestamp().Logger(),
	})
	if err != nil {
		return fmt.Errorf("start the development control plane: %w", err)
	}
	defer srv.Shutdown()

	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		return fmt.Errorf("server URL %q: %w", srv.ClientURL(), err)
	}
	reachable := u.Scheme + "://" + net.JoinHostPort(reachableHost(host), u.Port())
	if o.WriteCreds != "" {
		if err := writeCreds(o.WriteCreds, srv, adminFor(srv, reachable, o, "").env, o.Clusters); err != nil {
			return err
		}
	}
	printInstructions(out, srv, reachable, o)
	<-ctx.Done()
	fmt.Fprintln(out, "scctl server: shutting down")
	return nil
}

// reachableHost is the address pods dial: a wildcard listen address is not
// one, and loopback is the pod's own, so pick the machine's first
// non-loopback IPv4 address.
func reachableHost(listen string) string {
	ip := net.ParseIP(listen)
	if ip == nil || !ip.IsUnspecified() {
		return listen
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// writeCreds writes scctl.env (env: the admin's credentials, for scctl;
// server_auth.go) and each cluster's Secret manifest (for the chart),
// owner-readable only.
func writeCreds(dir string, srv *devserver.Server, env string, clusters []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("--write-creds: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scctl.env"), []byte(env), 0o600); err != nil {
		return fmt.Errorf("--write-creds: %w", err)
	}
	for _, c := range clusters {
		manifest, err := os.ReadFile(srv.SecretManifest(c))
		if err != nil {
			return fmt.Errorf("--write-creds: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, c+"-nats-secret.yaml"), manifest, 0o600); err != nil {
			return fmt.Errorf("--write-creds: %w", err)
		}
	}
	return nil
}

// printInstructions never prints a password: they are in files only.
func printInstructions(out io.Writer, srv *devserver.Server, reachable string, o ServerOptions) {
	credDir := o.WriteCreds
	if credDir == "" {
		credDir = filepath.Dir(srv.SecretManifest("x"))
	}
	fmt.Fprintf(out, "sc-extension development control plane\n")
	fmt.Fprintf(out, "  listening on   %s (JetStream store %s)\n", srv.ClientURL(), srv.StoreDir())
	fmt.Fprintf(out, "  pods reach it  %s\n", reachable)
	if o.TLS.Enabled() {
		fmt.Fprintf(out, "  TLS:           required; clients verify %s against the CA that signed it (scctl --tls-ca FILE, agent --nats-ca-file)\n", o.TLS.CertFile)
		if o.TLS.ClientCAFile != "" {
			fmt.Fprintf(out, "  client certs:  required, signed by %s (scctl --tls-cert/--tls-key, agent --nats-cert-file/--nats-key-file)\n", o.TLS.ClientCAFile)
		}
	}
	if ip := net.ParseIP(reachableHost(o.listenHost())); ip != nil && ip.IsLoopback() {
		fmt.Fprintf(out, "  warning:       a loopback address is not reachable from pods; listen on 0.0.0.0 or the machine's address\n")
	}
	if o.WriteCreds != "" {
		fmt.Fprintf(out, "  scctl:         source %s\n", filepath.Join(o.WriteCreds, "scctl.env"))
	} else {
		fmt.Fprintf(out, "  scctl:         %s\n", adminFor(srv, reachable, o, credDir).hint)
	}
	for _, c := range o.Clusters {
		manifest := filepath.Join(credDir, c+"-nats-secret.yaml")
		fmt.Fprintf(out, "cluster %s:\n", c)
		fmt.Fprintf(out, "  kubectl create namespace sc-system\n")
		fmt.Fprintf(out, "  kubectl apply -n sc-system -f %s\n", manifest)
		fmt.Fprintf(out, "  helm install sc-extension ./chart -n sc-system --set cluster.id=%s --set nats.url=%s --set nats.credentialsSecret=%s --set nats.credentialsFormat=%s\n",
			c, reachable, devserver.SecretName, adminFor(srv, reachable, o, credDir).credentialsFormat)
	}
	fmt.Fprintf(out, "Stop with Ctrl-C or SIGTERM.\n")
}

func (o ServerOptions) listenHost() string {
	host, _, _ := net.SplitHostPort(o.Listen)
	return host
}
