package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPackageMapMatchesTree: every Go package under pkg/ is in
// docs/architecture.md's package map, and every pkg/ path the map names exists.
func TestPackageMapMatchesTree(t *testing.T) {
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	require.NoError(t, err)
	mapped := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(pkg/[a-z/]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		mapped[m[1]] = true
	}
	require.NotEmpty(t, mapped, "the package map lists pkg/ packages")

	var tree []string
	require.NoError(t, filepath.WalkDir(filepath.Join(root, "pkg"), func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.Name() == "integration" || d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if hasProductGo(t, path) {
			tree = append(tree, filepath.ToSlash(rel))
		}
		return nil
	}))
	sort.Strings(tree)
	for _, p := range tree {
		assert.True(t, mapped[p], "%s is missing from docs/architecture.md's package map", p)
	}
	for p := range mapped {
		assert.Contains(t, tree, p, "docs/architecture.md names %s, which is not a package", p)
	}
}

func hasProductGo(t *testing.T, dir string) bool {
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
			return true
		}
	}
	return false
}
