package imagepack

import (
	"archive/tar"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPackWritesDistrolessShapedImage(t *testing.T) {
	dir := t.TempDir()
	ca := testCA(t)
	bin := fakeBinary(t, "agent")
	out := filepath.Join(dir, "agent.tar")
	stamp := Stamp{Version: "v1.2.3", Revision: "0123abcd"}
	digest, err := Pack(agentSpec(t), bin, out, ca, stamp)
	require.NoError(t, err)

	// Both tags name the same image: the tests and chart use :dev, a
	// release uses its version.
	for _, ref := range []string{"localhost/sc-extension/agent:dev", "localhost/sc-extension/agent:v1.2.3"} {
		img := loadImage(t, out, ref)
		d, err := img.Digest()
		require.NoError(t, err)
		assert.Equal(t, digest, d.String(), ref)
	}
	img := loadImage(t, out, "localhost/sc-extension/agent:dev")
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "linux", cf.OS)
	assert.Equal(t, "amd64", cf.Architecture)
	assert.Equal(t, "65532:65532", cf.Config.User)
	assert.Equal(t, []string{"/agent"}, cf.Config.Entrypoint)
	assert.Empty(t, cf.Config.Cmd)
	assert.Equal(t, "/home/nonroot", cf.Config.WorkingDir)
	assert.Contains(t, cf.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	assert.Equal(t, map[string]string{
		"org.opencontainers.image.title":    "agent",
		"org.opencontainers.image.version":  "v1.2.3",
		"org.opencontainers.image.revision": "0123abcd",
		"org.opencontainers.image.source":   "https://github.com/sc-extension/sc-extension",
	}, cf.Config.Labels)

	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 2, "base layer + binary layer")
	files := map[string]*tar.Header{}
	contents := map[string]string{}
	for _, l := range layers {
		for h, c := range readLayer(t, l) {
			files[h.Name], contents[h.Name] = h, c
		}
	}
	for _, tc := range []struct {
		path     string
		mode     int64
		uid, gid int
		dir      bool
	}{
		{"agent", 0o755, 0, 0, false},
		{"tmp/", 0o1777, 0, 0, true},
		{"home/nonroot/", 0o700, 65532, 65532, true},
		{"root/", 0o700, 0, 0, true},
		{"etc/passwd", 0o644, 0, 0, false},
		{"etc/group", 0o644, 0, 0, false},
		{"etc/ssl/certs/ca-certificates.crt", 0o644, 0, 0, false},
	} {
		h := files[tc.path]
		if !assert.NotNil(t, h, "%s missing", tc.path) {
			continue
		}
		assert.Equal(t, tc.mode, h.Mode, "%s mode", tc.path)
		assert.Equal(t, tc.uid, h.Uid, "%s uid", tc.path)
		assert.Equal(t, tc.gid, h.Gid, "%s gid", tc.path)
		assert.Equal(t, tc.dir, h.Typeflag == tar.TypeDir, "%s type", tc.path)
		assert.Equal(t, epoch, h.ModTime.UTC(), "%s mtime", tc.path)
	}
	assert.Equal(t, string(ca), contents["etc/ssl/certs/ca-certificates.crt"])
	assert.Equal(t, "\x7fELF agent", contents["agent"])
	assert.Contains(t, contents["etc/passwd"], "root:x:0:0:root:/root:/sbin/nologin\n")
	assert.Contains(t, contents["etc/passwd"], "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
	assert.Contains(t, contents["etc/group"], "root:x:0:\n")
	assert.Contains(t, contents["etc/group"], "nonroot:x:65532:\n")

	// Same input, same digest: re-imports of unchanged images are no-ops.
	again, err := Pack(agentSpec(t), bin, filepath.Join(dir, "again.tar"), ca, stamp)
	require.NoError(t, err)
	assert.Equal(t, digest, again)
}

func TestImagesShareTheBaseLayer(t *testing.T) {
	ca := testCA(t)
	agent, err := Image(Distroless, fakeBinary(t, "agent"), ca, Stamp{})
	require.NoError(t, err)
	job, err := Image(Distroless, fakeBinary(t, "job"), ca, Stamp{})
	require.NoError(t, err)
	base := func(img v1.Image) v1.Hash {
		ls, err := img.Layers()
		require.NoError(t, err)
		d, err := ls[0].Digest()
		require.NoError(t, err)
		return d
	}
	assert.Equal(t, base(agent), base(job), "containerd stores the base once only if it is byte-identical")
}

// The sandbox image of every pod: nothing but the binary, whichever user
// the pod runs as.
func TestPauseIsFromScratch(t *testing.T) {
	spec, err := Select("pause")
	require.NoError(t, err)
	require.Equal(t, Scratch, spec[0].Base)
	img, err := Image(spec[0].Base, fakeBinary(t, "pause"), nil, Stamp{})
	require.NoError(t, err)
	assert.Equal(t, []fileFact{{Path: "/pause", Mode: 0o755}}, imageFiles(t, img))
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{"/pause"}, cf.Config.Entrypoint)
	assert.Equal(t, "/", cf.Config.WorkingDir)
	assert.Empty(t, cf.Config.Env)
}

func TestDevVersionHasOneTag(t *testing.T) {
	out := filepath.Join(t.TempDir(), "job.tar")
	_, err := Pack(Spec{Ref: "localhost/sc-extension/job:dev", Base: Distroless}, fakeBinary(t, "job"), out, testCA(t), Stamp{})
	require.NoError(t, err)
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(out) })
	require.NoError(t, err)
	require.Len(t, m, 1)
	assert.Equal(t, []string{"localhost/sc-extension/job:dev"}, m[0].RepoTags)
}

func TestStamp(t *testing.T) {
	const makefile = "-X github.com/sc-extension/sc-extension/pkg/version.Version=v1.2.3"
	assert.Equal(t, "-s -w "+makefile, Stamp{Version: "v1.2.3"}.GoLDFlags(), "derived from VERSION")
	assert.Equal(t, "-s -w -X example.com/x.Y=z", Stamp{Version: "v1.2.3", LDFlags: "-X example.com/x.Y=z"}.GoLDFlags(), "LDFLAGS honoured verbatim")
	assert.Equal(t, "-s -w -X github.com/sc-extension/sc-extension/pkg/version.Version=dev", Stamp{}.GoLDFlags())

	assert.Equal(t, map[string]string{
		"org.opencontainers.image.title":    "job",
		"org.opencontainers.image.version":  "dev",
		"org.opencontainers.image.revision": "unknown",
		"org.opencontainers.image.source":   Source,
	}, Stamp{}.Labels("job"))

	tags, err := Stamp{Version: "v1.2.3-4-gabcdef-dirty"}.Tags("localhost/sc-extension/job:dev")
	require.NoError(t, err)
	require.Len(t, tags, 2)
	assert.Equal(t, "localhost/sc-extension/job:v1.2.3-4-gabcdef-dirty", tags[1].String())
	_, err = Stamp{Version: "1.0+build"}.Tags("localhost/sc-extension/job:dev")
	assert.ErrorContains(t, err, `VERSION "1.0+build" is not a valid image tag`)
}

func TestStampFromEnv(t *testing.T) {
	env := map[string]string{"VERSION": "v2.0.0", "LDFLAGS": "-X a.B=c"}
	// A directory outside any git checkout: no revision, no failure.
	s := StampFromEnv(t.Context(), t.TempDir(), func(k string) string { return env[k] })
	assert.Equal(t, Stamp{Version: "v2.0.0", LDFlags: "-X a.B=c"}, s)
}

func TestCABundle(t *testing.T) {
	dir := t.TempDir()
	_, err := CABundle(filepath.Join(dir, "missing.crt"))
	assert.ErrorIs(t, err, errNoCABundle)
	assert.ErrorContains(t, err, "apt-get install ca-certificates")

	empty := filepath.Join(dir, "empty.crt")
	require.NoError(t, os.WriteFile(empty, []byte("not PEM\n"), 0o644))
	_, err = CABundle(empty)
	assert.ErrorIs(t, err, errNoCABundle)

	good := filepath.Join(dir, "good.crt")
	require.NoError(t, os.WriteFile(good, testCA(t), 0o644))
	got, err := CABundle(good)
	require.NoError(t, err)
	assert.Equal(t, testCA(t), got)
}

func TestBuildFailsEarlyWithoutCABundle(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "agent"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "agent", "main.go"), []byte("package main\n"), 0o644))
	_, err := Build(t.Context(), Images[:1], Options{
		Root: root, OutDir: filepath.Join(root, "out"), BinDir: filepath.Join(root, "bin"),
		CABundle: filepath.Join(root, "none.crt"), Progress: io.Discard,
	})
	assert.True(t, errors.Is(err, errNoCABundle), "%v", err)
	_, statErr := os.Stat(filepath.Join(root, "bin"))
	assert.True(t, os.IsNotExist(statErr), "nothing compiled before the CA check")
}

var (
	caOnce sync.Once
	caPEM  []byte
	caErr  error
)

// testCA returns a PEM bundle of one self-signed certificate, the same on
// every call within a test binary, so that tests need no host bundle.
func testCA(t *testing.T) []byte {
	t.Helper()
	caOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			caErr = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imagepack test CA"},
			NotBefore: time.Unix(0, 0), NotAfter: time.Unix(0, 0).Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		caPEM, caErr = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), err
	})
	require.NoError(t, caErr)
	return caPEM
}

func agentSpec(t *testing.T) Spec {
	t.Helper()
	s, err := Select("agent")
	require.NoError(t, err)
	return s[0]
}

// fakeBinary writes a stand-in for a go build output named binary.
func fakeBinary(t *testing.T, binary string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), binary)
	require.NoError(t, os.WriteFile(p, []byte("\x7fELF "+binary), 0o755))
	return p
}

func loadImage(t *testing.T, path, ref string) v1.Image {
	t.Helper()
	tag, err := name.NewTag(ref)
	require.NoError(t, err)
	img, err := tarball.ImageFromPath(path, &tag)
	require.NoError(t, err, "tarball does not hold %s", ref)
	return img
}

// readLayer returns the layer's headers with their contents.
func readLayer(t *testing.T, l v1.Layer) map[*tar.Header]string {
	t.Helper()
	rc, err := l.Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	out := map[*tar.Header]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		out[h] = string(b)
	}
}

// imageFiles lists every entry of every layer, in order.
func imageFiles(t *testing.T, img v1.Image) []fileFact {
	t.Helper()
	layers, err := img.Layers()
	require.NoError(t, err)
	var out []fileFact
	for _, l := range layers {
		rc, err := l.Uncompressed()
		require.NoError(t, err)
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			p := "/" + h.Name
			if h.Typeflag == tar.TypeDir {
				p = p[:len(p)-1]
			}
			out = append(out, fileFact{Path: p, Dir: h.Typeflag == tar.TypeDir, Mode: h.Mode, UID: h.Uid, GID: h.Gid})
		}
		require.NoError(t, rc.Close())
	}
	return out
}
