package chart

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/sc-extension/sc-extension/internal/testkit/charttest"
)

// acceptedCritical are kube-score's critical checks the chart fails on
// purpose; docs/chart.md ("kube-score") says why.
var acceptedCritical = []string{
	"CPU limit is not set",
	"ImagePullPolicy is not set to Always",
}

// kubeScore is $KUBE_SCORE, else bin/kube-score (built from its Go module,
// docs/chart.md); "" when neither exists.
func kubeScore(t *testing.T) string {
	if p := os.Getenv("KUBE_SCORE"); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join(charttest.Dir(), "..", "bin", "kube-score"))
	require.NoError(t, err)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Every supported configuration scores no critical finding but the
// documented ones.
func TestKubeScoreNoUndocumentedCritical(t *testing.T) {
	bin := kubeScore(t)
	if bin == "" {
		t.Skip("kube-score not installed: GOBIN=$PWD/bin go install github.com/zegl/kube-score/cmd/kube-score@v1.20.0")
	}
	files, err := charttest.CIValuesFiles()
	require.NoError(t, err)
	c := loadChart(t)
	line := regexp.MustCompile(`^\[CRITICAL\] .*?: (\(\S+\) )?(.+)$`)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			user, err := charttest.ReadValuesFile(file)
			require.NoError(t, err)
			vals, err := charttest.ValuesWithAPIs(c, user, releaseNamespace, true, "monitoring.coreos.com/v1/ServiceMonitor")
			require.NoError(t, err)
			r := renderValues(t, c, vals)
			var manifests bytes.Buffer
			for _, o := range r.objects {
				y, err := yaml.Marshal(o)
				require.NoError(t, err)
				manifests.WriteString("---\n")
				manifests.Write(y)
			}
			cmd := exec.Command(bin, "score", "--output-format", "ci", "-")
			cmd.Stdin = &manifests
			// kube-score exits 1 when it reports a critical finding.
			out, err := cmd.Output()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				require.NoError(t, err, "kube-score: %s", out)
			}
			var critical int
			for _, l := range strings.Split(string(out), "\n") {
				m := line.FindStringSubmatch(l)
				if m == nil {
					continue
				}
				critical++
				assert.Contains(t, acceptedCritical, m[2], "undocumented critical finding: %s", l)
			}
			assert.Positive(t, critical, "kube-score ran and reported the documented findings:\n%s", out)
		})
	}
}
