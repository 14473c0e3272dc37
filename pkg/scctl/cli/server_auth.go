package cli

import (
	"github.com/spf13/pflag"

	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

// addServerAuthFlags adds `scctl server`'s authentication flags.
func addServerAuthFlags(*pflag.FlagSet, *devserver.AuthOptions) {}
