package imagepack

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Packing one binary twice writes byte-identical tarballs, not only equal
// digests: a release's SHA256SUMS names the tarballs. go-containerregistry
// lists an image's tags in map order, so this packs several times (a lucky
// order passes once in two) and checks manifest.json's tags are sorted.
func TestPackIsByteReproducible(t *testing.T) {
	dir := t.TempDir()
	ca, bin := testCA(t), fakeBinary(t, "agent")
	stamp := Stamp{Version: "v1.2.3", Revision: "0123abcd"}
	var first []byte
	for i := range 6 {
		out := filepath.Join(dir, "agent.tar")
		_, err := Pack(agentSpec(t), bin, out, ca, stamp)
		require.NoError(t, err)
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		if i == 0 {
			first = b
			continue
		}
		require.Equal(t, first, b, "pack %d differs from the first", i)
	}
	var m tarball.Manifest
	require.NoError(t, json.Unmarshal(tarEntry(t, filepath.Join(dir, "agent.tar"), "manifest.json"), &m))
	require.Len(t, m, 1)
	assert.Equal(t, []string{"localhost/sc-extension/agent:dev", "localhost/sc-extension/agent:v1.2.3"}, m[0].RepoTags)
}

func tarEntry(t *testing.T, path, name string) []byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		require.NoError(t, err, "%s not in %s", name, path)
		if h.Name == name {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			return b
		}
	}
}
