package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ErrDirtyTree is returned when the working tree has changes a release would
// build but its commit would not hold.
var ErrDirtyTree = errors.New("working tree has uncommitted changes (commit them, or ALLOW_DIRTY=1 for a local build)")

// source is the commit a release is built from.
type source struct {
	Revision string    // commit hash; "-dirty" appended when built from a dirty tree
	Time     time.Time // commit time: the date of every chart archive entry
	Dirty    []string  // `git status --porcelain` lines
}

func gitSource(ctx context.Context, root string) (source, error) {
	var s source
	out, err := git(ctx, root, "log", "-1", "--format=%H %ct", "HEAD")
	if err != nil {
		return s, err
	}
	hash, ts, ok := strings.Cut(out, " ")
	sec, perr := strconv.ParseInt(ts, 10, 64)
	if !ok || perr != nil {
		return s, fmt.Errorf("git log: unexpected output %q", out)
	}
	s.Revision, s.Time = hash, time.Unix(sec, 0).UTC()
	// Untracked files count: an untracked .go file is compiled in.
	status, err := git(ctx, root, "status", "--porcelain", "--untracked-files=normal")
	if err != nil {
		return s, err
	}
	if status != "" {
		s.Dirty = strings.Split(status, "\n")
		s.Revision += "-dirty"
	}
	return s, nil
}

// dirtyError names the first few changed paths, the usual surprise being a
// forgotten file.
func dirtyError(lines []string) error {
	const show = 5
	shown := lines
	if len(shown) > show {
		shown = shown[:show]
	}
	more := ""
	if len(lines) > show {
		more = fmt.Sprintf(" and %d more", len(lines)-show)
	}
	return fmt.Errorf("%w: %s%s", ErrDirtyTree, strings.Join(shown, ", "), more)
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimRight(string(out), "\n"), nil
}
