package previous

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sc-extension/sc-extension/e2e/testbed"
	"github.com/sc-extension/sc-extension/e2e/testbed/buildcache"
)

// V010Commit is release v0.1.0. Named by hash, not by tag: CI's clone may
// carry no tags.
const V010Commit = "ad02d28ef6d1197d88134f1b44d4524e6102b856"

// Options of Build.
type Options struct {
	// RepoRoot is the git checkout holding (or able to fetch) Commit;
	// testbed.RepoRoot() when empty.
	RepoRoot string
	// Commit is what to build: a full hash (a shallow clone can fetch only
	// that), or any name git rev-parse resolves locally.
	Commit string
	// Version is stamped into the binaries and is the images' only tag.
	Version string
	// CacheDir holds one entry per commit and version; the project's cache
	// (~/.cache/sc-extension/releases) when empty.
	CacheDir string
	// Logf reports progress and timings; silent when nil.
	Logf func(string, ...any)

	// pack replaces running the commit's imagepack, for unit tests.
	pack func(ctx context.Context, src, out, version string) ([]string, error)
}

// Release is a built earlier release.
type Release struct {
	Commit, Version string
	// Chart is that commit's chart directory (extracted).
	Chart string
	// Images are the image tarballs packed by that commit's own
	// e2e/cmd/imagepack, stamped VERSION=Version and tagged only Version.
	Images []string
	// ImageTag is what the chart must be given (--set image.tag=...) to run
	// these images.
	ImageTag string
}

// manifest is written last into a cache entry: an entry without one is
// incomplete and built again.
type manifest struct {
	Commit  string    `json:"commit"`
	Version string    `json:"version"`
	Images  []string  `json:"images"` // names relative to the entry
	Built   time.Time `json:"built"`
}

const manifestFile = "release.json"

// images are the product's images; the chart's `helm test` pod runs scctl.
var images = []string{"agent", "job", "scctl"}

// ErrCommitMissing is returned (wrapped) when the commit is neither in the
// repository nor fetchable from origin.
var ErrCommitMissing = errors.New("commit not in the repository")

// Build extracts the commit, runs its imagepack with VERSION=Version into
// the cache and returns the result; a complete cache entry is reused.
// Idempotent and safe to call concurrently, also from two processes: the
// entry is built under a file lock.
func Build(ctx context.Context, o Options) (*Release, error) {
	if o.Commit == "" || o.Version == "" {
		return nil, errors.New("previous: Commit and Version are required")
	}
	if err := o.defaults(); err != nil {
		return nil, err
	}
	commit, err := resolve(ctx, o.RepoRoot, o.Commit, o.Logf)
	if err != nil {
		return nil, err
	}
	entry := filepath.Join(o.CacheDir, commit[:12]+"-"+sanitize(o.Version))
	var start time.Time
	r, built, err := buildcache.Get(ctx, entry,
		func(entry string) (*Release, error) { return load(entry, commit, o.Version) },
		func(ctx context.Context, tmp string) error {
			start = time.Now()
			return build(ctx, o, commit, tmp)
		})
	if err != nil {
		return nil, err
	}
	if built {
		o.Logf("previous: built %s (%s) in %s into %s", o.Version, commit[:12], time.Since(start).Round(100*time.Millisecond), entry)
	} else {
		o.Logf("previous: %s (%s) from the cache %s", o.Version, commit[:12], entry)
	}
	return r, nil
}

func (o *Options) defaults() error {
	if o.RepoRoot == "" {
		root, err := testbed.RepoRoot()
		if err != nil {
			return fmt.Errorf("previous: %w", err)
		}
		o.RepoRoot = root
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(testbed.CacheDir(), "releases")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.pack == nil {
		o.pack = runImagepack
	}
	return nil
}

// build fills tmp, a fresh directory that replaces the entry once
// complete, with the commit's sources and images.
func build(ctx context.Context, o Options, commit, tmp string) error {
	src := filepath.Join(tmp, "src")
	if err := extract(ctx, o.RepoRoot, commit, src); err != nil {
		return err
	}
	packed := filepath.Join(tmp, "packed")
	tars, err := o.pack(ctx, src, packed, o.Version)
	if err != nil {
		return fmt.Errorf("previous: packing the images of %s: %w", commit[:12], err)
	}
	if len(tars) == 0 {
		return fmt.Errorf("previous: %s packed no images", commit[:12])
	}
	m := manifest{Commit: commit, Version: o.Version, Built: time.Now().UTC()}
	for _, tar := range tars {
		rel := filepath.Join("images", filepath.Base(tar))
		if err := Retag(tar, filepath.Join(tmp, rel), o.Version); err != nil {
			return err
		}
		m.Images = append(m.Images, rel)
	}
	// The binaries and the packed originals are not needed again.
	_ = os.RemoveAll(packed)
	_ = os.RemoveAll(filepath.Join(src, "_output"))
	if err := buildcache.WriteManifest(tmp, manifestFile, m); err != nil {
		return fmt.Errorf("previous: %w", err)
	}
	return nil
}

// load returns the release of a complete entry.
func load(entry, commit, version string) (*Release, error) {
	var m manifest
	if err := buildcache.ReadManifest(entry, manifestFile, &m); err != nil {
		return nil, err
	}
	if m.Commit != commit || m.Version != version {
		return nil, fmt.Errorf("%s names %s %s", manifestFile, m.Commit, m.Version)
	}
	r := &Release{Commit: commit, Version: version, Chart: filepath.Join(entry, "src", "chart"), ImageTag: version}
	if _, err := os.Stat(filepath.Join(r.Chart, "Chart.yaml")); err != nil {
		return nil, err
	}
	for _, rel := range m.Images {
		p := filepath.Join(entry, rel)
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
		r.Images = append(r.Images, p)
	}
	return r, nil
}

// sanitize keeps a version usable as a directory name.
func sanitize(v string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator || r == ' ' {
			return '_'
		}
		return r
	}, v)
}
