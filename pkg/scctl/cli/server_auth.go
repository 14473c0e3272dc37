package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/scctl/fleetauth"
)

// addServerAuthFlags adds `scctl server`'s authentication flags.
func addServerAuthFlags(fs *pflag.FlagSet, o *devserver.AuthOptions) {
	fs.Var(&authModeFlag{&o.Mode}, "auth",
		"client authentication: password (a user and password per cluster, fixed at start) or jwt (NATS JWTs; "+
			"clusters added and removed at runtime with scctl cluster add|remove)")
	fs.StringVar(&o.KeystoreDir, "keystore", "", "with --auth jwt: the keystore directory (default <store-dir>/credentials)")
}

// authModeFlag refuses an unknown mode while flags are parsed: a usage
// error (exit 2), not a failed start.
type authModeFlag struct{ mode *devserver.AuthMode }

func (f *authModeFlag) String() string {
	if f.mode == nil || *f.mode == "" {
		return string(devserver.AuthPassword)
	}
	return string(*f.mode)
}

func (f *authModeFlag) Set(v string) error {
	m := devserver.AuthMode(v)
	if err := (devserver.AuthOptions{Mode: m}).Validate(); err != nil {
		return fmt.Errorf("%q is not password or jwt", v)
	}
	*f.mode = m
	return nil
}

func (f *authModeFlag) Type() string { return "mode" }

// serverAdmin is what `scctl server` tells about the admin's credentials
// and the chart's credentials format, by mode: env lines for scctl.env
// (--write-creds) and the hint printed without it. Never a password.
type serverAdmin struct {
	env, hint, credentialsFormat string
}

func adminFor(srv *devserver.Server, reachable string, o ServerOptions, credDir string) serverAdmin {
	if o.Auth.JWT() {
		keys := srv.KeystoreDir()
		creds := fleetauth.AdminCredsPath(keys)
		return serverAdmin{
			env: fmt.Sprintf("export SCCTL_SERVER=%s\nexport SCCTL_CREDS=%s\nexport SCCTL_KEYSTORE=%s\n", reachable, creds, keys),
			hint: fmt.Sprintf("--server %s --creds %s; add clusters with SCCTL_KEYSTORE=%s scctl cluster add ID",
				reachable, creds, keys),
			credentialsFormat: "creds",
		}
	}
	admin := srv.Admin()
	return serverAdmin{
		env: fmt.Sprintf("export SCCTL_SERVER=%s\nexport SCCTL_USER=%s\nexport SCCTL_PASSWORD=%s\n",
			reachable, admin.User, admin.Password),
		hint: fmt.Sprintf("--server %s --user %s, password in %s (or use --write-creds DIR)",
			reachable, devserver.AdminUser, filepath.Join(credDir, "users.json")),
		credentialsFormat: "userPassword",
	}
}
