package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gitRepo makes a repository with one commit dated at 2024-05-06 07:08:09 UTC.
func gitRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.go"), []byte("package a\n"), 0o644))
	for _, args := range [][]string{
		{"init", "-q"},
		{"add", "a.go"},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "one"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE=2024-05-06T07:08:09Z", "GIT_AUTHOR_DATE=2024-05-06T07:08:09Z")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
	}
	return dir
}

func TestGitSourceClean(t *testing.T) {
	dir := gitRepo(t)
	src, err := gitSource(context.Background(), dir)
	require.NoError(t, err)
	head, err := git(context.Background(), dir, "rev-parse", "HEAD")
	require.NoError(t, err)
	assert.Equal(t, head, src.Revision)
	assert.Empty(t, src.Dirty)
	assert.Equal(t, time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), src.Time, "the commit's time dates the chart archive")
}

// A modified or an untracked file makes the tree dirty: build refuses before
// it writes anything, and names the paths.
func TestBuildRefusesDirtyTree(t *testing.T) {
	for name, dirty := range map[string]func(dir string) error{
		"modified":  func(dir string) error { return os.WriteFile(filepath.Join(dir, "a.go"), []byte("package b\n"), 0o644) },
		"untracked": func(dir string) error { return os.WriteFile(filepath.Join(dir, "b.go"), []byte("package a\n"), 0o644) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := gitRepo(t)
			require.NoError(t, dirty(dir))
			out := filepath.Join(t.TempDir(), "release")
			_, err := build(context.Background(), options{Root: dir, Out: out, Version: "v1.0.0", Helm: "/nonexistent/helm"})
			require.True(t, errors.Is(err, ErrDirtyTree), "%v", err)
			assert.Contains(t, err.Error(), ".go")
			_, statErr := os.Stat(out)
			assert.True(t, os.IsNotExist(statErr), "nothing written: %v", statErr)

			src, err := gitSource(context.Background(), dir)
			require.NoError(t, err)
			assert.Regexp(t, "^[0-9a-f]{40}-dirty$", src.Revision, "a dirty build's revision label says so")
		})
	}
}

// The version is checked before anything else, the tree included.
func TestBuildRefusesBadVersion(t *testing.T) {
	_, err := build(context.Background(), options{Root: t.TempDir(), Out: t.TempDir(), Version: "1.0.0"})
	assert.True(t, errors.Is(err, ErrBadVersion), "%v", err)
}

func TestDirtyErrorNamesFirstPaths(t *testing.T) {
	err := dirtyError([]string{" M a", " M b", " M c", " M d", " M e", "?? f", "?? g"})
	assert.True(t, errors.Is(err, ErrDirtyTree))
	assert.Contains(t, err.Error(), " M e and 2 more")
	assert.NotContains(t, err.Error(), "?? f")
}
