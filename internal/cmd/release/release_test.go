package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart/loader"

	"github.com/sc-extension/sc-extension/e2e/testbed"
)

const testVersion = "v9.8.7-test.1"

// TestReleaseFromCleanClone runs the release twice on a clone of HEAD (a
// clean tree, as CI's checkout is; the shared working tree's uncommitted
// edits are not what a release is built from) and checks what it wrote.
func TestReleaseFromCleanClone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three binaries and images twice")
	}
	ctx := context.Background()
	root, err := testbed.RepoRoot()
	require.NoError(t, err)
	helm := findHelm(root)
	if _, err := exec.LookPath(helm); err != nil {
		t.Skipf("no helm binary (make tools builds bin/helm): %v", err)
	}
	clone := filepath.Join(t.TempDir(), "src")
	out, err := exec.CommandContext(ctx, "git", "clone", "-q", root, clone).CombinedOutput()
	require.NoError(t, err, "git clone: %s", out)
	trackedChart, err := os.ReadFile(filepath.Join(clone, "chart", "Chart.yaml"))
	require.NoError(t, err)
	head, err := git(ctx, clone, "rev-parse", "HEAD")
	require.NoError(t, err)

	ca := testCABundle(t)
	var dirs []string
	for _, out := range []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")} {
		var progress bytes.Buffer
		dir, err := build(ctx, options{Root: clone, Out: out, Version: testVersion, Helm: helm, CABundle: ca, Progress: &progress})
		require.NoError(t, err, progress.String())
		assert.Equal(t, filepath.Join(out, testVersion), dir)
		dirs = append(dirs, dir)
	}

	t.Run("reproducible", func(t *testing.T) {
		a, err := os.ReadFile(filepath.Join(dirs[0], sumsFile))
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(dirs[1], sumsFile))
		require.NoError(t, err)
		assert.Equal(t, string(a), string(b), "every file, image digests included, is identical in both runs")
	})

	dir := dirs[0]
	t.Run("SHA256SUMS covers every file", func(t *testing.T) {
		sums := readSums(t, dir)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		var files []string
		for _, e := range entries {
			if e.Name() != sumsFile {
				files = append(files, e.Name())
			}
		}
		want := []string{"agent-image.tar", "agent-linux-amd64", "images.txt", "job-image.tar", "job-linux-amd64",
			"sc-extension-9.8.7-test.1.tgz", "scctl-image.tar", "scctl-linux-amd64"}
		assert.Equal(t, want, files)
		var listed []string
		for f, sum := range sums {
			listed = append(listed, f)
			b, err := os.ReadFile(filepath.Join(dir, f))
			require.NoError(t, err)
			h := sha256.Sum256(b)
			assert.Equal(t, hex.EncodeToString(h[:]), sum, f)
		}
		sort.Strings(listed)
		assert.Equal(t, want, listed)
	})

	t.Run("chart stamped, tracked Chart.yaml untouched", func(t *testing.T) {
		c, err := loader.Load(filepath.Join(dir, "sc-extension-9.8.7-test.1.tgz"))
		require.NoError(t, err)
		assert.Equal(t, "9.8.7-test.1", c.Metadata.Version)
		assert.Equal(t, testVersion, c.Metadata.AppVersion)
		assert.Equal(t, "sc-extension", c.Metadata.Name)
		after, err := os.ReadFile(filepath.Join(clone, "chart", "Chart.yaml"))
		require.NoError(t, err)
		assert.Equal(t, string(trackedChart), string(after))
		status, err := git(ctx, clone, "status", "--porcelain")
		require.NoError(t, err)
		assert.Empty(t, status, "the release left the tree clean")
	})

	t.Run("images named by digest, stamped, holding the released binaries", func(t *testing.T) {
		lines := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dir, imagesFile))), "\n")
		require.Len(t, lines, len(images))
		for i, img := range images {
			d, err := name.NewDigest(lines[i], name.StrictValidation)
			require.NoError(t, err, lines[i])
			repoTag, _, _ := strings.Cut(lines[i], "@")
			assert.Equal(t, "localhost/sc-extension/"+img+":"+testVersion, repoTag)
			tag, err := name.NewTag(repoTag, name.StrictValidation)
			require.NoError(t, err)
			image, err := tarball.ImageFromPath(filepath.Join(dir, imageFile(img)), &tag)
			require.NoError(t, err)
			digest, err := image.Digest()
			require.NoError(t, err)
			assert.Equal(t, d.DigestStr(), digest.String(), "images.txt names the manifest digest of %s", img)
			cf, err := image.ConfigFile()
			require.NoError(t, err)
			assert.Equal(t, testVersion, cf.Config.Labels["org.opencontainers.image.version"])
			assert.Equal(t, head, cf.Config.Labels["org.opencontainers.image.revision"])

			layers, err := image.Layers()
			require.NoError(t, err)
			inImage := fileInLayer(t, layers[len(layers)-1].Uncompressed, img)
			released, err := os.ReadFile(filepath.Join(dir, binaryFile(img)))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(inImage, released), "%s: the released binary is the one the image runs", img)
		}
	})

	t.Run("scctl version", func(t *testing.T) {
		if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
			t.Skipf("the release's binaries are linux/amd64, this is %s/%s", runtime.GOOS, runtime.GOARCH)
		}
		out, err := exec.CommandContext(ctx, filepath.Join(dir, binaryFile("scctl")), "version", "-o", "json").Output()
		require.NoError(t, err, "%s", out)
		var v struct {
			Client struct{ Version string } `json:"client"`
		}
		require.NoError(t, json.Unmarshal(out, &v), "%s", out)
		assert.Equal(t, testVersion, v.Client.Version)
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// readSums parses SHA256SUMS as `sha256sum -c` does: "<hex>  <file>".
func readSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(dir, sumsFile)), "\n"), "\n") {
		sum, f, ok := strings.Cut(l, "  ")
		require.True(t, ok, "line %q", l)
		require.Regexp(t, "^[0-9a-f]{64}$", sum)
		sums[f] = sum
	}
	return sums
}

// fileInLayer returns the content of /<name> in a layer.
func fileInLayer(t *testing.T, open func() (io.ReadCloser, error), name string) []byte {
	t.Helper()
	rc, err := open()
	require.NoError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		require.NoError(t, err, "/%s not in the layer", name)
		if strings.TrimPrefix(h.Name, "/") == name {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			return b
		}
	}
}

// testCABundle writes a self-signed CA certificate: the images' CA bundle,
// so that the test does not depend on the host's ca-certificates package.
func testCABundle(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "release test CA"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(0, 0).Add(100 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	return path
}
