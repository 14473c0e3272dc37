// Command scctl is the control plane's command line for sc-extension; see
// docs/scctl.md. The command tree lives in pkg/scctl/cli; this file only wires it
// to the process.
package main

import (
	"context"
	"os"

	"golang.org/x/term"

	"github.com/sc-extension/sc-extension/pkg/scctl/cli"
)

func main() {
	app := &cli.App{
		StdinIsTerminal: func() bool { return term.IsTerminal(int(os.Stdin.Fd())) },
	}
	os.Exit(app.Run(context.Background(), os.Args[1:]))
}
