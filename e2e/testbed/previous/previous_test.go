package previous

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/sc-extension/sc-extension/e2e/testbed"
)

// fakePack stands in for the commit's imagepack: it writes one small image
// per product image, tagged :dev and :version as imagepack tags them.
type fakePack struct{ calls atomic.Int32 }

func (f *fakePack) pack(_ context.Context, src, out, version string) ([]string, error) {
	f.calls.Add(1)
	if _, err := os.Stat(filepath.Join(src, "e2e", "cmd", "imagepack", "main.go")); err != nil {
		return nil, err // the commit's imagepack is what the real pack runs
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	var tars []string
	for _, n := range images {
		img, err := random.Image(64, 1)
		if err != nil {
			return nil, err
		}
		refs := map[name.Reference]v1.Image{}
		for _, tag := range []string{"dev", version} {
			ref, err := name.NewTag("localhost/sc-extension/"+n+":"+tag, name.StrictValidation)
			if err != nil {
				return nil, err
			}
			refs[ref] = img
		}
		p := filepath.Join(out, n+".tar")
		if err := tarball.MultiRefWriteToFile(p, refs); err != nil {
			return nil, err
		}
		tars = append(tars, p)
	}
	return tars, nil
}

func options(t *testing.T, f *fakePack) Options {
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return Options{RepoRoot: root, Commit: "HEAD", Version: "v9.9.9-test", CacheDir: t.TempDir(), Logf: t.Logf, pack: f.pack}
}

func TestBuildExtractsTheCommitAndCachesIt(t *testing.T) {
	f := &fakePack{}
	o := options(t, f)
	ctx := context.Background()
	r, err := Build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	head, err := git(ctx, o.RepoRoot, "rev-parse", "--verify", r.Commit+"^{commit}")
	if err != nil || head != r.Commit || len(r.Commit) != 40 {
		t.Fatalf("Commit %q is not a full commit hash (%v)", r.Commit, err)
	}
	if r.Version != o.Version || r.ImageTag != o.Version {
		t.Errorf("Version %q, ImageTag %q; want both %q", r.Version, r.ImageTag, o.Version)
	}
	// The chart is the commit's: its Chart.yaml is the one git holds.
	got, err := os.ReadFile(filepath.Join(r.Chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := git(ctx, o.RepoRoot, "show", r.Commit+":chart/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != want {
		t.Errorf("extracted Chart.yaml differs from the commit's")
	}
	// The commit's imagepack asks git for the revision it labels images with.
	src := filepath.Dir(r.Chart)
	if rev, err := git(ctx, src, "rev-parse", "HEAD"); err != nil || rev != r.Commit {
		t.Errorf("rev-parse HEAD in the extracted tree: %q, %v; want %s", rev, err, r.Commit)
	}
	if len(r.Images) != len(images) {
		t.Fatalf("images %v, want one per %v", r.Images, images)
	}
	for i, p := range r.Images {
		if tags := repoTags(t, p); len(tags) != 1 || tags[0] != "localhost/sc-extension/"+images[i]+":"+o.Version {
			t.Errorf("%s is tagged %v; want only :%s", p, tags, o.Version)
		}
	}

	again, err := Build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("a complete entry was packed again (%d packs)", n)
	}
	if strings.Join(again.Images, ",") != strings.Join(r.Images, ",") || again.Chart != r.Chart {
		t.Errorf("the cached release differs: %+v vs %+v", again, r)
	}

	// An entry without its manifest (a build killed half-way) is built again.
	entry := filepath.Dir(src)
	if err := os.Remove(filepath.Join(entry, manifestFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(ctx, o); err != nil {
		t.Fatal(err)
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("an incomplete entry was reused (%d packs)", n)
	}
}

func TestConcurrentBuildsPackOnce(t *testing.T) {
	f := &fakePack{}
	o := options(t, f)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { _, errs[i] = Build(context.Background(), o) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d packs for three concurrent builds of one entry", n)
	}
}

func TestMissingCommitIsAClearError(t *testing.T) {
	repo := t.TempDir()
	if out, err := exec.Command("git", "init", "--quiet", repo).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	f := &fakePack{}
	_, err := Build(context.Background(), Options{RepoRoot: repo, Commit: V010Commit, Version: "v0.1.0",
		CacheDir: t.TempDir(), pack: f.pack})
	if !errors.Is(err, ErrCommitMissing) {
		t.Fatalf("err = %v, want ErrCommitMissing", err)
	}
	if !strings.Contains(err.Error(), V010Commit) || !strings.Contains(err.Error(), "origin") {
		t.Errorf("the error names neither the commit nor the fetch: %v", err)
	}
	if f.calls.Load() != 0 {
		t.Error("packed without a commit")
	}
}

func TestRetagKeepsTheImage(t *testing.T) {
	dir := t.TempDir()
	img, err := random.Image(64, 2)
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.tar")
	refs := map[name.Reference]v1.Image{
		mustTag(t, "localhost/sc-extension/agent:dev"):    img,
		mustTag(t, "localhost/sc-extension/agent:v0.1.0"): img,
	}
	if err := tarball.MultiRefWriteToFile(in, refs); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out", "agent.tar")
	if err := Retag(in, out, "v0.1.0"); err != nil {
		t.Fatal(err)
	}
	if tags := repoTags(t, out); len(tags) != 1 || tags[0] != "localhost/sc-extension/agent:v0.1.0" {
		t.Errorf("tags %v", tags)
	}
	got, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, err := got.Digest(); err != nil || d != want {
		t.Errorf("digest %s (%v), want %s", d, err, want)
	}
	if err := Retag(in, out, "not a tag"); err == nil {
		t.Error("an invalid version was accepted as a tag")
	}
}

func repoTags(t *testing.T, path string) []string {
	t.Helper()
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil || len(m) != 1 {
		t.Fatalf("%s: %v (%d images)", path, err, len(m))
	}
	return m[0].RepoTags
}

func mustTag(t *testing.T, s string) name.Tag {
	tag, err := name.NewTag(s, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}
