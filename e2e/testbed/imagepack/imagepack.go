package imagepack

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Spec is one image.
type Spec struct {
	Name string    // binary and tarball name
	Pkg  string    // main package, relative to the repository root
	Ref  string    // image reference
	Base BaseImage // what the image starts FROM
}

// Images are the project's images. The first three are the product, on the
// Dockerfiles' base; pause and probe are the test bed's own (sandbox image
// and in-cluster probe); sampleapp is the workload of the seed's envFrom
// example, for demo and e2e. pause is FROM scratch like registry.k8s.io/pause,
// which it replaces: every pod's sandbox runs it, whatever the pod's user.
var Images = []Spec{
	{Name: "agent", Pkg: "./agent", Ref: "localhost/sc-extension/agent:dev", Base: Distroless},
	{Name: "job", Pkg: "./job", Ref: "localhost/sc-extension/job:dev", Base: Distroless},
	{Name: "scctl", Pkg: "./scctl", Ref: "localhost/sc-extension/scctl:dev", Base: Distroless},
	{Name: "pause", Pkg: "./e2e/testbed/images/pause", Ref: "localhost/sc-extension/pause:dev", Base: Scratch},
	{Name: "probe", Pkg: "./e2e/testbed/images/probe", Ref: "localhost/sc-extension/probe:dev", Base: Distroless},
	{Name: "sampleapp", Pkg: "./e2e/testbed/images/sampleapp", Ref: "localhost/sc-extension/sampleapp:dev", Base: Distroless},
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
	Stamp    Stamp     // version of binaries, labels and tags; zero: "dev"
	CABundle string    // CA bundle copied into the images; HostCABundle when empty
	Progress io.Writer // one line per image
}

// Build compiles the specs' binaries (static, stripped, version stamped,
// reproducible) and packs each into OutDir/<name>.tar. Specs whose package
// directory does not exist are skipped with a message; the paths of the
// written tarballs are returned.
func Build(ctx context.Context, specs []Spec, o Options) ([]string, error) {
	packed, err := BuildImages(ctx, specs, o)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(packed))
	for i, p := range packed {
		out[i] = p.Tarball
	}
	return out, nil
}

// Packed is one image Build wrote.
type Packed struct {
	Spec    Spec
	Binary  string   // the stamped binary in BinDir the image holds
	Tarball string   // OutDir/<name>.tar
	Tags    []string // the references the tarball names
	// Digest is the image's manifest digest (sha256:...): the one a registry
	// serves once the tarball is pushed with go-containerregistry (crane).
	Digest string
}

// BuildImages is Build, returning what it packed with the digests, for
// `make release`'s images.txt.
func BuildImages(ctx context.Context, specs []Spec, o Options) ([]Packed, error) {
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
	// Before compiling: a missing CA bundle should fail in a second, not after
	// a minute of go build.
	ca, err := CABundle(o.CABundle)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{o.OutDir, o.BinDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("imagepack: %w", err)
		}
	}
	// One go build for all packages: it compiles them in parallel.
	start := time.Now()
	args := append(goBuildFlags(o.Stamp), "-o", o.BinDir+"/")
	for _, s := range todo {
		args = append(args, s.Pkg)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), buildEnv...)
	cmd.Stdout, cmd.Stderr = o.Progress, o.Progress
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build: %w", err)
	}
	fmt.Fprintf(o.Progress, "imagepack: built %d binaries (version %s) in %s\n", len(todo), o.Stamp.version(), time.Since(start).Round(100*time.Millisecond))
	var out []Packed
	for _, s := range todo {
		// go build -o dir/ names the binary after the package directory.
		bin := filepath.Join(o.BinDir, filepath.Base(s.Pkg))
		tarPath := filepath.Join(o.OutDir, s.Name+".tar")
		digest, err := Pack(s, bin, tarPath, ca, o.Stamp)
		if err != nil {
			return nil, err
		}
		tags, err := o.Stamp.Tags(s.Ref)
		if err != nil {
			return nil, err
		}
		p := Packed{Spec: s, Binary: bin, Tarball: tarPath, Digest: digest}
		for _, t := range tags {
			p.Tags = append(p.Tags, t.String())
		}
		fi, err := os.Stat(tarPath)
		if err != nil {
			return nil, fmt.Errorf("imagepack: %w", err)
		}
		fmt.Fprintf(o.Progress, "imagepack: %s -> %s (%.1f MB, %s)\n", s.Ref, tarPath, float64(fi.Size())/1e6, digest)
		out = append(out, p)
	}
	return out, nil
}

// buildEnv makes static linux/amd64 binaries, like the Dockerfiles'
// CGO_ENABLED=0 GOOS=linux GOARCH=$TARGETARCH.
var buildEnv = []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}

// goBuildFlags are the Dockerfiles' go build flags.
func goBuildFlags(s Stamp) []string {
	return []string{"build", "-trimpath", "-ldflags", s.GoLDFlags()}
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
