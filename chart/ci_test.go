package chart

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"

	"github.com/sc-extension/sc-extension/internal/testkit/charttest"
)

// Every configuration in ci/ lints clean (what `helm lint chart --values
// chart/ci/<file>` runs), validates against the schema, decodes strictly and
// keeps every pod at Pod Security "restricted".
func TestCIValuesFiles(t *testing.T) {
	files, err := charttest.CIValuesFiles()
	require.NoError(t, err)
	c := loadChart(t)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			user, err := charttest.ReadValuesFile(file)
			require.NoError(t, err)

			res := lint.All(".", user, releaseNamespace, false)
			for _, m := range res.Messages {
				assert.Less(t, m.Severity, support.WarningSev, m.Error())
			}

			vals, err := values(t, c, user)
			require.NoError(t, err)
			r := renderValues(t, c, vals)
			assert.Equal(t, 3, assertRestricted(t, r), "agent Deployment, render hook Job, test Pod")
		})
	}
}
