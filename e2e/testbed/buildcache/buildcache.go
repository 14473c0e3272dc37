package buildcache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Get returns load(dir) when dir is a complete entry. Otherwise it builds
// it: build fills tmp, a fresh empty directory beside dir, which then
// replaces dir and is loaded. The lock dir+".lock" is held throughout.
// built says whether this call built the entry. The errors of load and
// build are returned as they are: they are the caller's.
func Get[T any](ctx context.Context, dir string, load func(dir string) (T, error), build func(ctx context.Context, tmp string) error) (v T, built bool, err error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return v, false, fmt.Errorf("buildcache: %w", err)
	}
	unlock, err := lock(ctx, dir+".lock")
	if err != nil {
		return v, false, err
	}
	defer unlock()
	if v, err := load(dir); err == nil {
		return v, false, nil
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return v, false, fmt.Errorf("buildcache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return v, false, fmt.Errorf("buildcache: %w", err)
	}
	if err := build(ctx, tmp); err != nil {
		return v, false, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return v, false, fmt.Errorf("buildcache: removing the incomplete entry: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return v, false, fmt.Errorf("buildcache: %w", err)
	}
	v, err = load(dir)
	if err != nil {
		return v, false, fmt.Errorf("buildcache: the entry just built is unreadable: %w", err)
	}
	return v, true, nil
}

// WriteManifest writes m as indented JSON to dir/name; build calls it last.
func WriteManifest(dir, name string, m any) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("buildcache: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		return fmt.Errorf("buildcache: %w", err)
	}
	return nil
}

// ReadManifest reads dir/name into m; load calls it first.
func ReadManifest(dir, name string, m any) error {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// lock takes an exclusive flock on path, waiting until ctx ends. Each call
// opens its own file description, so it also excludes another Get of the
// same entry in this process.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("buildcache: %w", err)
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("buildcache: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("buildcache: waiting for %s: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}
