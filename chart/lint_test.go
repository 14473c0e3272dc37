package chart

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// helm lint, through the SDK: with the values a user must set the chart is
// clean; without them lint reports the missing cluster id. Plain `helm lint
// chart` failing is deliberate: cluster.id has no safe default, so the
// schema requires it (chart/ci/default-values.yaml is the minimal install).
func TestLint(t *testing.T) {
	res := lint.All(".", minimal(), releaseNamespace, false)
	for _, m := range res.Messages {
		assert.Less(t, m.Severity, support.WarningSev, m.Error())
	}

	res = lint.All(".", nil, releaseNamespace, false)
	assert.Equal(t, support.ErrorSev, res.HighestSeverity)
	var named bool
	for _, m := range res.Messages {
		if m.Severity == support.ErrorSev && strings.Contains(m.Error(), "cluster") {
			named = true
		}
	}
	assert.True(t, named, "lint without values names cluster.id: %v", res.Messages)
}
