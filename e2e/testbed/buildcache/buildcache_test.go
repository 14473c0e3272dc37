package buildcache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

type manifest struct{ Payload string }

const manifestFile = "m.json"

// entry is a fake cached build: a payload file and the manifest naming it.
type entry struct{ builds atomic.Int32 }

func (e *entry) load(dir string) (string, error) {
	var m manifest
	if err := ReadManifest(dir, manifestFile, &m); err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, m.Payload))
	return string(b), err
}

func (e *entry) build(_ context.Context, tmp string) error {
	e.builds.Add(1)
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
		return errors.New("tmp is not a fresh empty directory")
	}
	if err := os.WriteFile(filepath.Join(tmp, "payload"), []byte("built"), 0o644); err != nil {
		return err
	}
	return WriteManifest(tmp, manifestFile, manifest{Payload: "payload"})
}

func TestGetBuildsOnceAndRebuildsAnIncompleteEntry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache", "x-v1")
	e := &entry{}
	ctx := context.Background()
	v, built, err := Get(ctx, dir, e.load, e.build)
	if err != nil || v != "built" || !built {
		t.Fatalf("first Get: %q, built %v, %v", v, built, err)
	}
	v, built, err = Get(ctx, dir, e.load, e.build)
	if err != nil || v != "built" || built || e.builds.Load() != 1 {
		t.Fatalf("second Get: %q, built %v, %v after %d builds; want the cached entry", v, built, err, e.builds.Load())
	}
	if _, err := os.Stat(dir + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("the temporary directory is left: %v", err)
	}

	// A killed build's entry, or one older than its manifest, lacks it.
	if err := os.Remove(filepath.Join(dir, manifestFile)); err != nil {
		t.Fatal(err)
	}
	if _, built, err := Get(ctx, dir, e.load, e.build); err != nil || !built || e.builds.Load() != 2 {
		t.Fatalf("an entry without its manifest: built %v, %v; want it built again", built, err)
	}
}

func TestFailedBuildLeavesNoEntry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x-v1")
	boom := errors.New("compiler exploded")
	_, _, err := Get(context.Background(), dir, (&entry{}).load, func(_ context.Context, tmp string) error {
		if err := os.WriteFile(filepath.Join(tmp, "half"), nil, 0o644); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the build's", err)
	}
	for _, p := range []string{dir, dir + ".tmp"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is left: %v", p, err)
		}
	}
}

func TestConcurrentGetsBuildOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x-v1")
	e := &entry{}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, _, errs[i] = Get(context.Background(), dir, e.load, e.build) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := e.builds.Load(); n != 1 {
		t.Errorf("%d builds for four concurrent Gets of one entry", n)
	}
}

func TestWaitingForTheLockEndsWithTheContext(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x-v1")
	unlock, err := lock(context.Background(), dir+".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e := &entry{}
	if _, _, err := Get(ctx, dir, e.load, e.build); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if e.builds.Load() != 0 {
		t.Error("built without the lock")
	}
}
