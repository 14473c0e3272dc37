//go:build e2e

package imagepack

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestPackWritesNonRootSingleBinaryImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "agent")
	if err := os.WriteFile(bin, []byte("\x7fELF fake binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "agent.tar")
	const ref = "localhost/sc-extension/agent:dev"
	digest, err := Pack(bin, ref, out)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(ref)
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("tarball does not hold %s: %v", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q", cf.Config.User)
	}
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/agent" {
		t.Errorf("entrypoint %v", cf.Config.Entrypoint)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d: %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
	}
	if h := files["agent"]; h == nil || h.Mode&0o111 == 0 || h.Uid != 0 {
		t.Errorf("binary entry: %+v", h)
	}
	if h := files["tmp/"]; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("tmp entry: %+v", h)
	}

	// Same input, same digest: re-imports of unchanged images are no-ops.
	again, err := Pack(bin, ref, filepath.Join(dir, "again.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if again != digest {
		t.Errorf("digest not reproducible: %s vs %s", digest, again)
	}
}

func TestSelect(t *testing.T) {
	s, err := Select("pause", "probe")
	if err != nil || len(s) != 2 || s[0].Ref != "localhost/sc-extension/pause:dev" {
		t.Fatalf("%v %v", s, err)
	}
	if _, err := Select("nope"); err == nil {
		t.Fatal("unknown image accepted")
	}
	// no name selects every image, and the product's images are among them
	all, _ := Select()
	refs := map[string]bool{}
	for _, s := range all {
		refs[s.Ref] = true
	}
	for _, want := range []string{"localhost/sc-extension/agent:dev", "localhost/sc-extension/job:dev", "localhost/sc-extension/scctl:dev"} {
		if !refs[want] {
			t.Errorf("Select() lacks %s", want)
		}
	}
	if len(refs) != len(all) {
		t.Errorf("two images share a reference: %v", all)
	}
}

func TestHasGoSources(t *testing.T) {
	dir := t.TempDir()
	if hasGoSources(dir) {
		t.Fatal("empty dir")
	}
	_ = os.WriteFile(filepath.Join(dir, "x_test.go"), []byte("package x"), 0o644)
	if hasGoSources(dir) {
		t.Fatal("test-only dir")
	}
	_ = os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main"), 0o644)
	if !hasGoSources(dir) {
		t.Fatal("main.go not seen")
	}
}
