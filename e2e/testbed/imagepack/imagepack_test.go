package imagepack

import (
	"os"
	"path/filepath"
	"testing"
)

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
