package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A --secret-file that exists world-readable does not stay so once it
// holds a seed.
func TestSecretFileIsOwnerOnlyEvenIfItExisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c1-nats-secret.yaml")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	require.NoError(t, os.Chmod(path, 0o644))
	require.NoError(t, writeOwnerOnly(path, []byte("seed")))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "seed", string(b))
}
