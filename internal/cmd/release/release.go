package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/sc-extension/sc-extension/e2e/testbed/imagepack"
)

// images are the product's images a release ships, in imagepack's names.
var images = []string{"agent", "job", "scctl"}

// File names in a release directory.
const (
	sumsFile   = "SHA256SUMS"
	imagesFile = "images.txt"
	platform   = "linux-amd64" // imagepack builds for linux/amd64 only
)

func binaryFile(image string) string { return image + "-" + platform }
func imageFile(image string) string  { return image + "-image.tar" }

// options of build.
type options struct {
	Root       string // repository root
	Out        string // the release goes to Out/<version>
	Version    string
	AllowDirty bool
	Helm       string    // helm binary
	CABundle   string    // imagepack's; empty: the host's
	Progress   io.Writer // one line per step
}

// build writes the release and returns its directory. It is assembled in a
// sibling directory and renamed into place, so a failed run leaves no
// half-written release under the version's name.
func build(ctx context.Context, o options) (_ string, err error) {
	v, err := parseVersion(o.Version)
	if err != nil {
		return "", err
	}
	src, err := gitSource(ctx, o.Root)
	if err != nil {
		return "", err
	}
	if len(src.Dirty) > 0 {
		if !o.AllowDirty {
			return "", dirtyError(src.Dirty)
		}
		fmt.Fprintf(o.Progress, "release: building %s from a dirty tree (%d changed paths); revision label %s\n", v.Tag, len(src.Dirty), src.Revision)
	}
	dest := filepath.Join(o.Out, v.Tag)
	stage := dest + ".partial"
	if err := os.RemoveAll(stage); err != nil {
		return "", fmt.Errorf("release directory: %w", err)
	}
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return "", fmt.Errorf("release directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(stage)
		}
	}()

	specs, err := imagepack.Select(images...)
	if err != nil {
		return "", err
	}
	work := filepath.Join(stage, ".work")
	packed, err := imagepack.BuildImages(ctx, specs, imagepack.Options{
		Root: o.Root, OutDir: filepath.Join(work, "images"), BinDir: filepath.Join(work, "bin"),
		Stamp:    imagepack.Stamp{Version: v.Tag, Revision: src.Revision},
		CABundle: o.CABundle, Progress: o.Progress,
	})
	if err != nil {
		return "", fmt.Errorf("images: %w", err)
	}
	if len(packed) != len(images) {
		return "", fmt.Errorf("imagepack packed %d of %d images", len(packed), len(images))
	}
	var refs []string
	for _, p := range packed {
		if err := os.Rename(p.Tarball, filepath.Join(stage, imageFile(p.Spec.Name))); err != nil {
			return "", fmt.Errorf("release directory: %w", err)
		}
		if err := os.Rename(p.Binary, filepath.Join(stage, binaryFile(p.Spec.Name))); err != nil {
			return "", fmt.Errorf("release directory: %w", err)
		}
		ref, err := pinnedRef(p, v.Tag)
		if err != nil {
			return "", err
		}
		refs = append(refs, ref)
	}
	if err := os.RemoveAll(work); err != nil {
		return "", fmt.Errorf("release directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(stage, imagesFile), []byte(strings.Join(refs, "\n")+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("release directory: %w", err)
	}

	if _, err := packageChart(ctx, o.Helm, filepath.Join(o.Root, "chart"), stage, v, src.Time); err != nil {
		return "", err
	}
	if err := writeSums(stage); err != nil {
		return "", fmt.Errorf("%s: %w", sumsFile, err)
	}
	if err := os.RemoveAll(dest); err != nil {
		return "", fmt.Errorf("release directory: %w", err)
	}
	if err := os.Rename(stage, dest); err != nil {
		return "", fmt.Errorf("release directory: %w", err)
	}
	return dest, nil
}

// pinnedRef is repository:version@digest of a packed image: the tag a
// released chart pulls by default, pinned to what was packed.
func pinnedRef(p imagepack.Packed, tag string) (string, error) {
	for _, t := range p.Tags {
		nt, err := name.NewTag(t, name.StrictValidation)
		if err != nil {
			return "", fmt.Errorf("image %s: %w", p.Spec.Name, err)
		}
		if nt.TagStr() == tag {
			return nt.String() + "@" + p.Digest, nil
		}
	}
	return "", fmt.Errorf("image %s was not tagged %s (tags %v)", p.Spec.Name, tag, p.Tags)
}

// writeSums writes dir/SHA256SUMS over every other file in dir, sorted, in
// the format `sha256sum -c` reads.
func writeSums(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != sumsFile {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		sum, err := fileSHA256(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, n)
	}
	return os.WriteFile(filepath.Join(dir, sumsFile), []byte(b.String()), 0o644)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
