// Package imagepack builds the project's container images without Docker
// or a registry: static Go binaries, each alone in a one-layer image written
// as a docker-archive tarball that `ctr images import`, `docker load` and
// `kind load image-archive` all accept.
package imagepack

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// NonRootUser is the numeric user (and group) the images run as: numeric so
// that runAsNonRoot can verify it without an /etc/passwd in the image; the
// same as distroless' "nonroot".
const NonRootUser = "65532:65532"

// Spec is one image.
type Spec struct {
	Name string // binary and tarball name
	Pkg  string // main package, relative to the repository root
	Ref  string // image reference
}

// Images are the project's images. The first three are the product; pause
// and probe are the test bed's own (sandbox image and in-cluster probe);
// sampleapp is the workload of the seed's envFrom example, for demo and e2e.
var Images = []Spec{
	{Name: "agent", Pkg: "./agent", Ref: "localhost/sc-extension/agent:dev"},
	{Name: "job", Pkg: "./job", Ref: "localhost/sc-extension/job:dev"},
	{Name: "scctl", Pkg: "./scctl", Ref: "localhost/sc-extension/scctl:dev"},
	{Name: "pause", Pkg: "./e2e/testbed/images/pause", Ref: "localhost/sc-extension/pause:dev"},
	{Name: "probe", Pkg: "./e2e/testbed/images/probe", Ref: "localhost/sc-extension/probe:dev"},
	{Name: "sampleapp", Pkg: "./e2e/testbed/images/sampleapp", Ref: "localhost/sc-extension/sampleapp:dev"},
}

// Select returns the Images with the given names (all if none given).
func Select(names ...string) ([]Spec, error) {
	if len(names) == 0 {
		return Images, nil
	}
	var out []Spec
	for _, n := range names {
		found := false
		for _, s := range Images {
			if s.Name == n {
				out, found = append(out, s), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown image %q", n)
		}
	}
	return out, nil
}

// Options of Build.
type Options struct {
	Root     string    // repository root
	OutDir   string    // tarballs go here (_output/images)
	BinDir   string    // binaries go here (_output/bin/linux_amd64)
	Progress io.Writer // one line per image
}

// Build compiles the specs' binaries (static, stripped, reproducible) and
// packs each into OutDir/<name>.tar. Specs whose package directory does not
// exist are skipped with a message; the paths of the written tarballs are
// returned.
func Build(ctx context.Context, specs []Spec, o Options) ([]string, error) {
	var todo []Spec
	for _, s := range specs {
		if !hasGoSources(filepath.Join(o.Root, s.Pkg)) {
			fmt.Fprintf(o.Progress, "imagepack: skipping %s: no Go package in %s (yet)\n", s.Ref, s.Pkg)
			continue
		}
		todo = append(todo, s)
	}
	if len(todo) == 0 {
		return nil, nil
	}
	for _, d := range []string{o.OutDir, o.BinDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// One go build for all packages: it compiles them in parallel.
	start := time.Now()
	args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", o.BinDir + "/"}
	for _, s := range todo {
		args = append(args, s.Pkg)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	cmd.Stdout, cmd.Stderr = o.Progress, o.Progress
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build: %w", err)
	}
	fmt.Fprintf(o.Progress, "imagepack: built %d binaries in %s\n", len(todo), time.Since(start).Round(100*time.Millisecond))
	var out []string
	for _, s := range todo {
		// go build -o dir/ names the binary after the package directory.
		bin := filepath.Join(o.BinDir, filepath.Base(s.Pkg))
		tarPath := filepath.Join(o.OutDir, s.Name+".tar")
		digest, err := Pack(bin, s.Ref, tarPath)
		if err != nil {
			return nil, err
		}
		fi, _ := os.Stat(tarPath)
		fmt.Fprintf(o.Progress, "imagepack: %s -> %s (%.1f MB, %s)\n", s.Ref, tarPath, float64(fi.Size())/1e6, digest)
		out = append(out, tarPath)
	}
	return out, nil
}

// hasGoSources reports whether dir holds a non-test Go file. Directories of
// images still being written may exist without one; those are skipped, while
// a package that does not compile fails the build.
func hasGoSources(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range m {
		if !strings.HasSuffix(f, "_test.go") {
			return true
		}
	}
	return false
}

// epoch is the timestamp of every file and of the image: identical inputs
// give identical digests, so re-importing an unchanged image is a no-op.
var epoch = time.Unix(0, 0).UTC()

// Pack writes a docker-archive tarball at out holding one image tagged ref
// whose only layer is /tmp and the binary at /<basename>, run as
// NonRootUser with the binary as entrypoint. It returns the image digest.
func Pack(binary, ref, out string) (string, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	data, err := os.ReadFile(binary)
	if err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	base := filepath.Base(binary)
	layerTar, err := layerTar(base, data)
	if err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{
		CreatedBy: "imagepack " + base, Created: v1.Time{Time: epoch},
	}})
	if err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	cf = cf.DeepCopy()
	// Without os/architecture containerd's platform filter drops the image.
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: []string{"/" + base},
		Env:        []string{"PATH=/"},
		User:       NonRootUser,
		WorkingDir: "/",
		Labels:     map[string]string{"org.opencontainers.image.title": base},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		return "", fmt.Errorf("pack %s: %w", ref, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// layerTar builds the layer: a world-writable sticky /tmp (many libraries
// assume one) and the binary, owned by root and executable by everyone.
func layerTar(base string, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdrs := []*tar.Header{
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: epoch},
		{Name: strings.TrimPrefix(base, "/"), Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data)), ModTime: epoch},
	}
	for i, h := range hdrs {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if i == 1 {
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
