package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
)

// nodeCommand runs this binary as one bare cluster node (-servers self):
// nats-server with JetStream, routes to its peers and the password users
// of devserver (an admin and one confined user per cluster). It stands in
// for `scctl server` with cluster flags where that is not available; the
// bench then creates the streams and consumers itself.
const nodeCommand = "node"

func runNode(args []string) error {
	fs := flag.NewFlagSet(nodeCommand, flag.ContinueOnError)
	name := fs.String("name", "n1", "server name")
	listen := fs.String("listen", "127.0.0.1:4222", "client host:port")
	clusterListen := fs.String("cluster-listen", "127.0.0.1:6222", "route host:port")
	peers := fs.String("peers", "", "comma-separated nats-route:// URLs of the other nodes")
	store := fs.String("store", "", "JetStream store directory")
	usersPath := fs.String("users", "", "users.json: the admin and each cluster's user and password")
	keystore := fs.String("keystore", "", "a fleetauth keystore to trust (JWT authentication) instead of -users")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, port, err := hostPort(*listen)
	if err != nil {
		return err
	}
	chost, cport, err := hostPort(*clusterListen)
	if err != nil {
		return err
	}
	opts := &server.Options{
		ServerName: *name, Host: host, Port: port, JetStream: true, StoreDir: *store, MaxPayload: 1 << 20,
		Cluster: server.ClusterOpts{Name: "sc-fleet", Host: chost, Port: cport},
		Routes:  server.RoutesFromStr(*peers),
		NoSigs:  true,
	}
	if err := configureNodeAuth(opts, *usersPath, *keystore); err != nil {
		return err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	ns.ConfigureLogger()
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return fmt.Errorf("node %s not ready", *name)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}

func hostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	return h, n, err
}

// configureNodeAuth trusts the keystore's operator (its account resolver
// in the store directory), or lists the users of usersPath.
func configureNodeAuth(opts *server.Options, usersPath, keystore string) error {
	if keystore != "" {
		k, err := fleetauth.Open(keystore, devserver.ClusterPermissions)
		if err != nil {
			return err
		}
		return k.Configure(opts, filepath.Join(opts.StoreDir, "jwt"))
	}
	var users userFile
	b, err := os.ReadFile(usersPath)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &users); err != nil {
		return fmt.Errorf("%s: %w", usersPath, err)
	}
	opts.Users = []*server.User{{Username: users.Admin.User, Password: users.Admin.Password}}
	for c, cred := range users.Clusters {
		opts.Users = append(opts.Users, &server.User{Username: cred.User, Password: cred.Password, Permissions: devserver.ClusterPermissions(c)})
	}
	return nil
}
