package previous

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// resolve returns the full hash of commit, fetching it from origin first
// when the repository lacks it (a shallow CI clone).
func resolve(ctx context.Context, repo, commit string, logf func(string, ...any)) (string, error) {
	if h, err := git(ctx, repo, "rev-parse", "--verify", "--quiet", commit+"^{commit}"); err == nil {
		return h, nil
	}
	logf("previous: %s is not in %s; fetching it from origin", commit, repo)
	args := []string{"fetch", "--quiet", "--no-tags"}
	// --depth on a complete clone would make it shallow.
	if s, err := git(ctx, repo, "rev-parse", "--is-shallow-repository"); err == nil && s == "true" {
		args = append(args, "--depth=1")
	}
	if _, err := git(ctx, repo, append(args, "origin", commit)...); err != nil {
		return "", fmt.Errorf("previous: %w: %s, and fetching it from origin failed: %w", ErrCommitMissing, commit, err)
	}
	h, err := git(ctx, repo, "rev-parse", "--verify", "--quiet", commit+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("previous: %w: %s, even after fetching it from origin", ErrCommitMissing, commit)
	}
	return h, nil
}

// extract writes the tree of commit into dir (git archive | tar -x) and
// makes dir answer `git rev-parse HEAD` with commit, which is how the
// commit's imagepack labels its images with their revision.
func extract(ctx context.Context, repo, commit, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("previous: %w", err)
	}
	archive := exec.CommandContext(ctx, "git", "archive", "--format=tar", commit)
	archive.Dir = repo
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return fmt.Errorf("previous: %w", err)
	}
	var aerr, terr bytes.Buffer
	archive.Stderr, untar.Stderr, untar.Stdin = &aerr, &terr, pipe
	if err := archive.Start(); err != nil {
		return fmt.Errorf("previous: git archive: %w", err)
	}
	if err := untar.Run(); err != nil {
		_ = archive.Wait()
		return fmt.Errorf("previous: extracting %s: tar: %w: %s", commit[:12], err, strings.TrimSpace(terr.String()))
	}
	if err := archive.Wait(); err != nil {
		return fmt.Errorf("previous: git archive %s: %w: %s", commit[:12], err, strings.TrimSpace(aerr.String()))
	}
	// A stub repository with a detached HEAD and no objects: enough for
	// rev-parse; go build is told not to stamp VCS information from it.
	stub := filepath.Join(dir, ".git")
	for _, d := range []string{"objects", "refs"} {
		if err := os.MkdirAll(filepath.Join(stub, d), 0o755); err != nil {
			return fmt.Errorf("previous: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(stub, "HEAD"), []byte(commit+"\n"), 0o644); err != nil {
		return fmt.Errorf("previous: %w", err)
	}
	return nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(out.String()), nil
}
