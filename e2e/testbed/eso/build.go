package eso

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sc-extension/sc-extension/e2e/testbed"
	"github.com/sc-extension/sc-extension/e2e/testbed/buildcache"
)

// Module and Version are the ESO release the benchmark measures: the one
// issue 9's figures were taken with.
const (
	Module  = "github.com/external-secrets/external-secrets"
	Version = "v0.16.2"
)

// crdDir is where the module keeps its CRDs; kustomization.yaml there is
// not a CRD.
const crdDir = "config/crds/bases"

// Options of Build.
type Options struct {
	// CacheDir holds the built entry; the project's cache
	// (~/.cache/sc-extension) when empty. The entry is
	// CacheDir/eso-<Version>.
	CacheDir string
	// Logf reports progress and timings; silent when nil.
	Logf func(string, ...any)

	// download and compile replace the go command, for unit tests.
	download func(ctx context.Context, work string) (string, error)
	compile  func(ctx context.Context, src, out string) error
}

// Release is a built ESO.
type Release struct {
	// Binary is ESO's controller (its main package, `external-secrets`).
	Binary string
	// CRDs are the module's CRD manifests, in name order.
	CRDs []string
}

// manifest is written last into the entry: an entry without one is
// incomplete and built again.
type manifest struct {
	Module  string    `json:"module"`
	Version string    `json:"version"`
	CRDs    []string  `json:"crds"` // names relative to the entry
	Built   time.Time `json:"built"`
}

const (
	manifestFile = "eso.json"
	binaryName   = "external-secrets"
)

// Build returns ESO from the cache, building it first when the cache has
// no complete entry. Safe to call concurrently, also from two processes:
// the entry is built under a file lock.
func Build(ctx context.Context, o Options) (*Release, error) {
	o.defaults()
	entry := filepath.Join(o.CacheDir, "eso-"+Version)
	var start time.Time
	r, built, err := buildcache.Get(ctx, entry, load, func(ctx context.Context, tmp string) error {
		start = time.Now()
		o.Logf("eso: building %s %s into %s (about 8 min on 2 cores with a cold Go cache)", Module, Version, entry)
		return build(ctx, o, tmp)
	})
	if err != nil {
		return nil, err
	}
	if built {
		o.Logf("eso: built %s in %s", Version, time.Since(start).Round(100*time.Millisecond))
	} else {
		o.Logf("eso: %s %s from the cache %s", Module, Version, entry)
	}
	return r, nil
}

func (o *Options) defaults() {
	if o.CacheDir == "" {
		o.CacheDir = testbed.CacheDir()
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.download == nil {
		o.download = goModDownload
	}
	if o.compile == nil {
		o.compile = goBuild
	}
}

// build fills tmp, a fresh directory that replaces the entry once complete.
func build(ctx context.Context, o Options, tmp string) error {
	dir, err := o.download(ctx, tmp)
	if err != nil {
		return fmt.Errorf("eso: downloading %s@%s: %w", Module, Version, err)
	}
	// The module cache is read-only and go build writes nothing into the
	// source, but a replace directive only works in the main module: the
	// copy is the main module.
	src := filepath.Join(tmp, "src")
	if err := copyTree(dir, src); err != nil {
		return fmt.Errorf("eso: copying the module: %w", err)
	}
	if err := o.compile(ctx, src, filepath.Join(tmp, binaryName)); err != nil {
		return fmt.Errorf("eso: building %s: %w", Version, err)
	}
	m := manifest{Module: Module, Version: Version, Built: time.Now().UTC()}
	crds, err := copyCRDs(filepath.Join(src, crdDir), filepath.Join(tmp, "crds"))
	if err != nil {
		return err
	}
	for _, c := range crds {
		m.CRDs = append(m.CRDs, filepath.Join("crds", c))
	}
	if err := os.RemoveAll(src); err != nil {
		return fmt.Errorf("eso: %w", err)
	}
	if err := buildcache.WriteManifest(tmp, manifestFile, m); err != nil {
		return fmt.Errorf("eso: %w", err)
	}
	return nil
}

// load returns the release of a complete entry.
func load(entry string) (*Release, error) {
	var m manifest
	if err := buildcache.ReadManifest(entry, manifestFile, &m); err != nil {
		return nil, err
	}
	if m.Module != Module || m.Version != Version {
		return nil, fmt.Errorf("%s names %s@%s", manifestFile, m.Module, m.Version)
	}
	if len(m.CRDs) == 0 {
		return nil, fmt.Errorf("%s lists no CRDs", manifestFile)
	}
	r := &Release{Binary: filepath.Join(entry, binaryName)}
	if st, err := os.Stat(r.Binary); err != nil || st.Mode()&0o100 == 0 {
		return nil, fmt.Errorf("no executable %s", r.Binary)
	}
	for _, rel := range m.CRDs {
		p := filepath.Join(entry, rel)
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
		r.CRDs = append(r.CRDs, p)
	}
	return r, nil
}

// copyCRDs copies the CRD manifests (every .yaml but kustomization.yaml)
// and returns their names in order.
func copyCRDs(from, to string) ([]string, error) {
	ents, err := os.ReadDir(from)
	if err != nil {
		return nil, fmt.Errorf("eso: the module's CRDs: %w", err)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return nil, fmt.Errorf("eso: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") || e.Name() == "kustomization.yaml" {
			continue
		}
		if err := copyFile(filepath.Join(from, e.Name()), filepath.Join(to, e.Name()), 0o644); err != nil {
			return nil, fmt.Errorf("eso: %w", err)
		}
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("eso: no CRD in %s", from)
	}
	sort.Strings(names)
	return names, nil
}

// goModDownload fetches the module through the Go module proxy and returns
// its directory in the module cache. It runs outside any module, so the
// project's go.mod is neither read nor changed.
func goModDownload(ctx context.Context, work string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", Module+"@"+Version)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GOWORK=off", "GO111MODULE=on")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("go mod download: reading its answer: %w", err)
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download: %s", info.Error)
	}
	return info.Dir, nil
}

// goBuild builds the module's main package. -trimpath keeps the build
// cache's keys independent of the copy's path, so a second build after a
// cache wipe of this entry only links.
func goBuild(ctx context.Context, src, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w\n%s", err, tail(b, 4000))
	}
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// copyTree copies a directory tree, making everything writable by its
// owner (the module cache's files are read-only).
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyFile(p, dst, info.Mode().Perm()|0o200)
		default:
			return nil // the module cache holds no links or devices
		}
	})
}

func copyFile(from, to string, mode fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
