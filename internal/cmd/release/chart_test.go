package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type entry struct {
	name string
	mode int64
	body string
}

// writeTgz writes entries the way helm package does: dated at modTime, with
// a marker in the gzip header.
func writeTgz(t *testing.T, path string, modTime time.Time, entries []entry) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Extra, zw.Comment, zw.ModTime = []byte("marker"), "Helm", modTime
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), ModTime: modTime}))
		_, err := tw.Write([]byte(e.body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

func readTgz(t *testing.T, path string) (*gzip.Header, []*tar.Header, []string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	var hs []*tar.Header
	var bodies []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		hs, bodies = append(hs, h), append(bodies, string(b))
	}
	return &zr.Header, hs, bodies
}

// Two packages of the same chart made at different times are byte-identical
// once redated; names, order, modes, contents and helm's gzip marker stay.
func TestRedateMakesThePackageReproducible(t *testing.T) {
	dir := t.TempDir()
	entries := []entry{
		{"sc-extension/Chart.yaml", 0o644, "name: sc-extension\n"},
		{"sc-extension/values.yaml", 0o644, "a: 1\n"},
		{"sc-extension/templates/x.yaml", 0o600, "kind: X\n"},
	}
	date := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for i, made := range []time.Time{time.Date(2025, 1, 1, 0, 0, 1, 5, time.UTC), time.Date(2025, 2, 3, 4, 5, 6, 7, time.UTC)} {
		src := filepath.Join(dir, "src"+string(rune('0'+i))+".tgz")
		writeTgz(t, src, made, entries)
		require.NoError(t, redate(src, filepath.Join(dir, "out"+string(rune('0'+i))+".tgz"), date))
	}
	a, err := os.ReadFile(filepath.Join(dir, "out0.tgz"))
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, "out1.tgz"))
	require.NoError(t, err)
	assert.Equal(t, a, b)

	zh, hs, bodies := readTgz(t, filepath.Join(dir, "out0.tgz"))
	assert.Equal(t, []byte("marker"), zh.Extra)
	assert.Equal(t, "Helm", zh.Comment)
	assert.True(t, zh.ModTime.IsZero() || zh.ModTime.Unix() == 0, "no gzip timestamp: %v", zh.ModTime)
	require.Len(t, hs, len(entries))
	for i, e := range entries {
		assert.Equal(t, e.name, hs[i].Name)
		assert.Equal(t, e.mode, hs[i].Mode)
		assert.Equal(t, e.body, bodies[i])
		assert.True(t, date.Equal(hs[i].ModTime), "%s dated %v", e.name, hs[i].ModTime)
	}
}
