package chart

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// A chart stamped by `make release` pulls the images of its own release:
// every image tag defaults to appVersion, and an explicit tag still wins.
func TestImageTagsFollowAppVersion(t *testing.T) {
	c := loadChart(t)
	c.Metadata.AppVersion = "1.4.2"

	vals, err := values(t, c, minimal())
	require.NoError(t, err)
	r := renderValues(t, c, vals)
	d := find[*appsv1.Deployment](t, r, "sc-agent")
	ctr := d.Spec.Template.Spec.Containers[0]
	assert.Equal(t, "localhost/sc-extension/agent:1.4.2", ctr.Image)
	assert.Equal(t, "localhost/sc-extension/job:1.4.2", argMap(ctr.Args)["--job-image"])
	assert.Equal(t, "1.4.2", d.Labels["app.kubernetes.io/version"])
	test := find[*corev1.Pod](t, r, "sc-extension-test-agent-ready")
	assert.Equal(t, "localhost/sc-extension/scctl:1.4.2", test.Spec.Containers[0].Image)

	vals, err = values(t, c, with(map[string]any{"image.tag": "1.4.1", "image.job.tag": "1.4.3"}))
	require.NoError(t, err)
	r = renderValues(t, c, vals)
	ctr = find[*appsv1.Deployment](t, r, "sc-agent").Spec.Template.Spec.Containers[0]
	assert.Equal(t, "localhost/sc-extension/agent:1.4.1", ctr.Image)
	assert.Equal(t, "localhost/sc-extension/job:1.4.3", argMap(ctr.Args)["--job-image"])
}

// The metadata a chart repository and Artifact Hub show.
func TestChartMetadata(t *testing.T) {
	m := loadChart(t).Metadata
	assert.NotEmpty(t, m.Icon)
	assert.NotEmpty(t, m.Home)
	assert.NotEmpty(t, m.Sources)
	assert.NotEmpty(t, m.Keywords)
	assert.Equal(t, ">=1.27.0-0", m.KubeVersion)
	require.NoError(t, m.Validate())
}
