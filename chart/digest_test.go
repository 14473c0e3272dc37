package chart

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// A digest from the release's images.txt pins each image: the agent, the
// sc-job image it launches (and the admission policy that allows only that
// image) and the test pod all carry repo:tag@digest; images without one keep
// the tag alone.
func TestImageDigestPins(t *testing.T) {
	agentDigest := "sha256:" + strings.Repeat("a", 64)
	jobDigest := "sha256:" + strings.Repeat("b", 64)
	c := loadChart(t)
	c.Metadata.AppVersion = "v1.4.2"
	vals, err := values(t, c, with(map[string]any{"image.agent.digest": agentDigest, "image.job.digest": jobDigest}))
	require.NoError(t, err)
	r := renderValues(t, c, vals)

	ctr := find[*appsv1.Deployment](t, r, "sc-agent").Spec.Template.Spec.Containers[0]
	assert.Equal(t, "localhost/sc-extension/agent:v1.4.2@"+agentDigest, ctr.Image)
	jobImage := "localhost/sc-extension/job:v1.4.2@" + jobDigest
	assert.Equal(t, jobImage, argMap(ctr.Args)["--job-image"])
	hook := find[*batchv1.Job](t, r, "sc-job-render")
	assert.Equal(t, jobImage, hook.Spec.Template.Spec.Containers[0].Image)
	p := find[*admissionregistrationv1.ValidatingAdmissionPolicy](t, r, "sc-extension-agent-jobs")
	assert.Contains(t, expressions(p), "c.image == '"+jobImage+"'")
	test := find[*corev1.Pod](t, r, "sc-extension-test-agent-ready")
	assert.Equal(t, "localhost/sc-extension/scctl:v1.4.2", test.Spec.Containers[0].Image, "no digest set for scctl")
}

func TestImageDigestSchema(t *testing.T) {
	c := loadChart(t)
	for _, bad := range []string{"latest", "sha256:" + strings.Repeat("a", 63), "sha512:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("A", 64)} {
		_, err := values(t, c, with(map[string]any{"image.job.digest": bad}))
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "/image/job/digest")
	}
}
