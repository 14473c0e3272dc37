// Command imagepack builds the project's images as tarballs in
// _output/images without Docker or a registry (see package imagepack).
//
//	go run ./e2e/cmd/imagepack [image ...]   # default: all images
//
// VERSION and LDFLAGS, as the Makefile exports them, stamp the binaries,
// labels and an extra tag; without them the version is "dev".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/sc-extension/sc-extension/e2e/testbed"
	"github.com/sc-extension/sc-extension/e2e/testbed/imagepack"
)

func main() {
	out := flag.String("out", "", "output directory (default <repo>/_output/images)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: imagepack [-out dir] [image ...]\nimages:")
		for _, s := range imagepack.Images {
			fmt.Fprintf(os.Stderr, " %s", s.Name)
		}
		fmt.Fprintln(os.Stderr)
	}
	flag.Parse()
	if err := run(*out, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "imagepack: %v\n", err)
		os.Exit(1)
	}
}

func run(out string, names []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	if out == "" {
		out = filepath.Join(root, "_output", "images")
	}
	specs, err := imagepack.Select(names...)
	if err != nil {
		return err
	}
	_, err = imagepack.Build(ctx, specs, imagepack.Options{
		Root: root, OutDir: out, BinDir: filepath.Join(root, "_output", "bin", "linux_amd64"),
		Stamp:    imagepack.StampFromEnv(ctx, root, os.Getenv),
		Progress: os.Stderr,
	})
	return err
}
