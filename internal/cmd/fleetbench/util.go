package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// serverBinary is the program each node runs.
func serverBinary(ctx context.Context, c config, work string) (string, error) {
	if c.Servers == "self" {
		return os.Executable()
	}
	if c.Scctl != "" {
		return filepath.Abs(c.Scctl)
	}
	bin := filepath.Join(work, "bin", "scctl")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./scctl")
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./scctl: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot is the repository root (where make runs); found from the
// working directory upwards.
func moduleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// loopbackPorts returns n ports from base, or n free ones when base is 0.
func loopbackPorts(base, n int) ([]int, error) {
	out := make([]int, 0, n)
	if base > 0 {
		for i := range n {
			out = append(out, base+i)
		}
		return out, nil
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a loopback port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func randomSecret() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// readSecretManifest reads the user and password from a cluster's Secret
// manifest (devserver writes it for `kubectl apply`).
func readSecretManifest(path string) (credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return credentials{}, err
	}
	var sec corev1.Secret
	if err := yaml.Unmarshal(b, &sec); err != nil {
		return credentials{}, fmt.Errorf("%s: %w", path, err)
	}
	c := credentials{User: sec.StringData["user"], Password: sec.StringData["password"]}
	if c.User == "" || c.Password == "" {
		return credentials{}, fmt.Errorf("%s: no user and password", path)
	}
	return c, nil
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// retry calls fn until it succeeds, ctx ends or limit passes, pausing
// 200ms between attempts; it returns the last error.
func retry(ctx context.Context, limit time.Duration, fn func(context.Context) error) error {
	deadline := time.Now().Add(limit)
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// forEach runs fn for every item, at most par at a time, and returns the
// first error.
func forEach[T any](ctx context.Context, items []T, par int, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, it); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
