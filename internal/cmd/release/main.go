package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/sc-extension/sc-extension/e2e/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ver := fs.String("version", "", "release version, vMAJOR.MINOR.PATCH[-PRERELEASE] (required)")
	out := fs.String("out", "", "parent of the release directory (default <repo>/_output/release)")
	allowDirty := fs.Bool("allow-dirty", false, "build from a working tree with uncommitted changes (a local build, not a release)")
	helm := fs.String("helm", "", "helm binary (default <repo>/bin/helm, else helm on PATH)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *ver == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: release -version vX.Y.Z [-out dir] [-allow-dirty] [-helm path]")
		return 2
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		fmt.Fprintf(stderr, "release: %v\n", err)
		return 1
	}
	o := options{Root: root, Out: *out, Version: *ver, AllowDirty: *allowDirty, Helm: *helm, Progress: stderr}
	if o.Out == "" {
		o.Out = filepath.Join(root, "_output", "release")
	}
	if o.Helm == "" {
		o.Helm = findHelm(root)
	}
	dir, err := build(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "release: %v\n", err)
		if errors.Is(err, ErrBadVersion) || errors.Is(err, ErrDirtyTree) {
			return 2
		}
		return 1
	}
	refs, err := os.ReadFile(filepath.Join(dir, imagesFile))
	if err != nil {
		fmt.Fprintf(stderr, "release: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "release %s written to %s\n%s", o.Version, dir, refs)
	return 0
}

// findHelm prefers the pinned helm `make tools` builds into bin/.
func findHelm(root string) string {
	p := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	return "helm"
}
