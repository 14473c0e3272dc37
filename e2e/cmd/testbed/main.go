// Command testbed manages the local Kubernetes test bed (see docs/testbed.md).
//
//	testbed kube-binaries          build/cache the Kubernetes and etcd binaries
//	testbed up [-mode full|api]    start the cluster; prints the kubeconfig path
//	testbed down                   stop it and clean the host
//	testbed status                 component and API health (exit 1 if not healthy)
//	testbed load-images            (re)import _output/images/*.tar into containerd
//	testbed kubeconfig             print the admin kubeconfig path
//
// Progress goes to stderr, results (paths) to stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"

	"github.com/sc-extension/sc-extension/e2e/testbed"
	"github.com/sc-extension/sc-extension/e2e/testbed/imagepack"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", testbed.DefaultStateDir(), "state directory of the cluster")
	mode := fs.String("mode", "full", "cluster mode for up: full or api")
	_ = fs.Parse(os.Args[2:])

	var err error
	switch os.Args[1] {
	case "kube-binaries":
		err = kubeBinaries(ctx)
	case "up":
		err = up(ctx, *dir, testbed.Mode(*mode))
	case "down":
		err = testbed.Down(ctx, *dir, os.Stderr)
		if err == nil {
			fmt.Fprintln(os.Stderr, "testbed: cluster down")
		}
	case "status":
		err = status(ctx, *dir)
	case "load-images":
		err = loadImages(ctx, *dir)
	case "kubeconfig":
		fmt.Println(testbed.Layout{Dir: *dir}.AdminKubeconfig())
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: testbed kube-binaries|up|down|status|load-images|kubeconfig [-dir DIR] [-mode full|api]")
	os.Exit(2)
}

func kubeBinaries(ctx context.Context) error {
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	return testbed.BuildKubeBinaries(ctx, root, os.Stderr)
}

func up(ctx context.Context, dir string, mode testbed.Mode) error {
	if mode != testbed.ModeFull && mode != testbed.ModeAPI {
		return fmt.Errorf("unknown mode %q", mode)
	}
	if os.Geteuid() != 0 && mode == testbed.ModeFull {
		return errors.New("full mode runs containerd and a kubelet: it needs root")
	}
	var tars []string
	if mode == testbed.ModeFull {
		var err error
		if tars, err = ensureOwnImages(ctx); err != nil {
			return err
		}
	}
	kc, err := testbed.Up(ctx, testbed.UpOptions{Dir: dir, Mode: mode, Images: tars, Progress: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "testbed: export KUBECONFIG=%s\n", kc)
	fmt.Println(kc)
	return nil
}

// ensureOwnImages builds the pause (sandbox) and probe images if their
// tarballs are missing, since no pod starts without pause, and returns every
// tarball in _output/images (the product images too, if `make images` ran).
func ensureOwnImages(ctx context.Context) ([]string, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return nil, err
	}
	out := filepath.Join(root, "_output", "images")
	var missing []string
	for _, n := range []string{"pause", "probe"} {
		if _, err := os.Stat(filepath.Join(out, n+".tar")); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		specs, err := imagepack.Select(missing...)
		if err != nil {
			return nil, err
		}
		if _, err := imagepack.Build(ctx, specs, imagepack.Options{
			Root: root, OutDir: out, BinDir: filepath.Join(root, "_output", "bin", "linux_amd64"), Progress: os.Stderr,
			Stamp: imagepack.StampFromEnv(ctx, root, os.Getenv),
		}); err != nil {
			return nil, err
		}
	}
	return testbed.ImageTarballs(out), nil
}

func loadImages(ctx context.Context, dir string) error {
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	tars := testbed.ImageTarballs(filepath.Join(root, "_output", "images"))
	if len(tars) == 0 {
		return errors.New("no image tarballs in _output/images: run make images")
	}
	if err := testbed.LoadImages(ctx, dir, tars); err != nil {
		return err
	}
	for _, t := range tars {
		fmt.Fprintf(os.Stderr, "testbed: imported %s\n", t)
	}
	return nil
}

func status(ctx context.Context, dir string) error {
	r := testbed.Status(ctx, dir)
	if r.Mode == "" {
		fmt.Printf("no cluster in %s\n", dir)
		return errors.New(r.Detail)
	}
	fmt.Printf("mode: %s\nkubeconfig: %s\n", r.Mode, r.Kubeconfig)
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tPID\tSTATUS")
	for _, c := range r.Components {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", c.Name, c.PID, c.Status)
	}
	tw.Flush()
	if !r.Healthy {
		return fmt.Errorf("cluster not healthy: %s", r.Detail)
	}
	fmt.Println("healthy: yes")
	return nil
}
