package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// chartName is chart/Chart.yaml's name, the prefix of the package's file.
const chartName = "sc-extension"

// packageChart runs `helm package` on chartDir with the release's versions
// into dir: helm stamps the copy it archives, never the tracked Chart.yaml.
// The archive is then rewritten with every entry dated at date, since helm
// dates them with the current time and the package would differ per run.
func packageChart(ctx context.Context, helm, chartDir, dir string, v version, date time.Time) (string, error) {
	work := filepath.Join(dir, ".helm")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", fmt.Errorf("chart: %w", err)
	}
	defer os.RemoveAll(work)
	cmd := exec.CommandContext(ctx, helm, "package", chartDir,
		"--version", v.Chart, "--app-version", v.Tag, "--destination", work)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("helm package: %w: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	name := fmt.Sprintf("%s-%s.tgz", chartName, v.Chart)
	dst := filepath.Join(dir, name)
	if err := redate(filepath.Join(work, name), dst, date); err != nil {
		return "", fmt.Errorf("chart: %w", err)
	}
	return dst, nil
}

// redate copies the gzipped tar at src to dst with every entry dated at
// date and no gzip timestamp, keeping entry order, names, modes and contents
// and the gzip header's Extra and Comment (helm's marker).
func redate(src, dst string, date time.Time) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Extra, zw.Comment = zr.Extra, zr.Comment
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		nh := &tar.Header{
			Typeflag: h.Typeflag, Name: h.Name, Linkname: h.Linkname, Mode: h.Mode, Size: h.Size,
			ModTime: date, Format: tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(nh); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}
