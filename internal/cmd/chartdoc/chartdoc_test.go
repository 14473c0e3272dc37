package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/internal/testkit/charttest"
)

func TestParseValuesNestedKeysAndDefaults(t *testing.T) {
	src := `
# A plain comment, not part of any description.

# -- Top-level string.
name: ""
image:
  # -- Registry of every image.
  registry: localhost
  agent:
    # -- Agent tag.
    # @default -- ` + "`.Chart.AppVersion`" + `
    tag: ""
    # -- Replicas.
    replicas: 2
# -- Whole map, one row.
resources:
  limits:
    memory: 256Mi
# -- A list.
tolerations:
  - key: CriticalAddonsOnly
# -- Ratio.
ratio: 0.5
# -- Flag.
on: false
# -- Nothing.
nothing: null
selector:
  # -- A key with a dot is quoted.
  kubernetes.io/os: linux
`
	vals, err := ParseValues([]byte(src))
	require.NoError(t, err)
	assert.Equal(t, []Value{
		{Key: "name", Type: "string", Default: "`\"\"`", Description: "Top-level string."},
		{Key: "image.registry", Type: "string", Default: "`\"localhost\"`", Description: "Registry of every image."},
		{Key: "image.agent.tag", Type: "string", Default: "`.Chart.AppVersion`", Description: "Agent tag."},
		{Key: "image.agent.replicas", Type: "int", Default: "`2`", Description: "Replicas."},
		{Key: "resources", Type: "object", Default: "`{\"limits\":{\"memory\":\"256Mi\"}}`", Description: "Whole map, one row."},
		{Key: "tolerations", Type: "list", Default: "`[{\"key\":\"CriticalAddonsOnly\"}]`", Description: "A list."},
		{Key: "ratio", Type: "float", Default: "`0.5`", Description: "Ratio."},
		{Key: "on", Type: "bool", Default: "`false`", Description: "Flag."},
		{Key: "nothing", Type: "null", Default: "`null`", Description: "Nothing."},
		{Key: `selector."kubernetes.io/os"`, Type: "string", Default: "`\"linux\"`", Description: "A key with a dot is quoted."},
	}, vals)
}

func TestParseValuesMultiLineDescription(t *testing.T) {
	src := `
# Private note above the marker.
# -- First line
# continues here.
#
# Second paragraph.
key: 1
`
	vals, err := ParseValues([]byte(src))
	require.NoError(t, err)
	require.Len(t, vals, 1)
	assert.Equal(t, "First line continues here.<br><br>Second paragraph.", vals[0].Description)
}

func TestParseValuesRejectsUndocumented(t *testing.T) {
	_, err := ParseValues([]byte(`
# -- Documented.
a: 1
nested:
  # -- Documented.
  b: 2
  c: 3
# just a comment, no marker
d: 4
`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nested.c has no description")
	assert.Contains(t, err.Error(), "line 9: d has no description")
	assert.NotContains(t, err.Error(), "line 3", "a is documented")

	_, err = ParseValues([]byte(`
# -- The parent.
parent:
  # -- And the child.
  child: 1
`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "parent has a description and so do keys below it")
}

func TestTableEscapesPipes(t *testing.T) {
	got := Table([]Value{{Key: "k", Type: "string", Default: "`\"a|b\"`", Description: "x | y"}})
	assert.Equal(t, "| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n"+
		"| `k` | string | `\"a\\|b\"` | x \\| y |\n", got)
}

// writeChart lays out a minimal chart for run.
func writeChart(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"Chart.yaml":       "apiVersion: v2\nname: demo\nversion: 0.1.0\ndescription: A demo.\n",
		"values.yaml":      "# -- Replicas.\nreplicaCount: 1\n",
		"README.md.gotmpl": "# {{ .Chart.Name }}\n\n{{ .Chart.Description }}\n\n{{ .ValuesTable }}",
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	return dir
}

func TestRunWritesThenChecks(t *testing.T) {
	dir := writeChart(t)
	var stdout, stderr bytes.Buffer

	require.Equal(t, 1, run([]string{"-check", dir}, &stdout, &stderr), "no README yet")
	assert.Contains(t, stderr.String(), "is stale: run `go run ./internal/cmd/chartdoc "+dir+"`")

	stderr.Reset()
	require.Equal(t, 0, run([]string{dir}, &stdout, &stderr), stderr.String())
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	require.NoError(t, err)
	assert.Contains(t, string(readme), "# demo\n\nA demo.\n")
	assert.Contains(t, string(readme), "| `replicaCount` | int | `1` | Replicas. |")
	require.Equal(t, 0, run([]string{"-check", dir}, &stdout, &stderr), stderr.String())

	// A changed default makes the committed README stale, and the hint shows the row.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "values.yaml"), []byte("# -- Replicas.\nreplicaCount: 2\n"), 0o644))
	stderr.Reset()
	require.Equal(t, 1, run([]string{"-check", dir}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "committed: | `replicaCount` | int | `1` | Replicas. |")
	assert.Contains(t, stderr.String(), "generated: | `replicaCount` | int | `2` | Replicas. |")

	assert.Equal(t, 2, run(nil, &stdout, &stderr), "the chart directory is required")
}

// The README committed in chart/ is what the generator makes of the chart
// today: a value added or changed without regenerating fails here.
func TestCommittedChartReadmeIsCurrent(t *testing.T) {
	want, err := Generate(charttest.Dir())
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(charttest.Dir(), readmeFile))
	require.NoError(t, err)
	if !bytes.Equal(got, want) {
		t.Fatalf("chart/README.md is stale: run `go run ./internal/cmd/chartdoc chart`\n%s", firstDifference(got, want))
	}
	assert.True(t, strings.HasPrefix(string(got), "<!-- Generated by"))
}
