package previous

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// runImagepack runs the commit's own `go run ./e2e/cmd/imagepack` in src,
// the way `make images` runs the working tree's, and returns the tarballs.
func runImagepack(ctx context.Context, src, out, version string) ([]string, error) {
	args := append([]string{"run", "./e2e/cmd/imagepack", "-out", out}, images...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = src
	// The Makefile exports VERSION and LDFLAGS for the working tree: both
	// are replaced, an empty LDFLAGS meaning the commit's own -X of VERSION.
	// GOWORK=off: a go.work above the cache must not pull in other modules.
	cmd.Env = append(os.Environ(), "VERSION="+version, "LDFLAGS=", "GOWORK=off",
		"GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -buildvcs=false"))
	b, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	var tars []string
	for _, n := range images {
		p := filepath.Join(out, n+".tar")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("imagepack wrote no %s: %w\n%s", n, err, b)
		}
		tars = append(tars, p)
	}
	return tars, nil
}

// Retag rewrites the single-image tarball in as out, tagged only
// <repository>:version (the repository of its first tag). Its config and
// layers are unchanged.
func Retag(in, out, version string) error {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(in) })
	if err != nil {
		return fmt.Errorf("previous: %s: %w", in, err)
	}
	if len(m) != 1 || len(m[0].RepoTags) == 0 {
		return fmt.Errorf("previous: %s: want one tagged image, found %d", in, len(m))
	}
	from, err := name.NewTag(m[0].RepoTags[0], name.StrictValidation)
	if err != nil {
		return fmt.Errorf("previous: %s: %w", in, err)
	}
	img, err := tarball.ImageFromPath(in, &from)
	if err != nil {
		return fmt.Errorf("previous: %s: %w", in, err)
	}
	to, err := name.NewTag(from.Repository.Name()+":"+version, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("previous: %q is not a valid image tag: %w", version, err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("previous: %w", err)
	}
	if err := tarball.MultiRefWriteToFile(out, map[name.Reference]v1.Image{to: img}); err != nil {
		return fmt.Errorf("previous: writing %s: %w", out, err)
	}
	return nil
}
