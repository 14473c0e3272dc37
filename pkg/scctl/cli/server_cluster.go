package cli

import (
	"github.com/spf13/pflag"

	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

// addServerClusterFlags adds `scctl server`'s JetStream cluster flags.
func addServerClusterFlags(*pflag.FlagSet, *devserver.ClusterOptions) {}
