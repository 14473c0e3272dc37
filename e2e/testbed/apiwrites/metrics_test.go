package apiwrites

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const exposition = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="PUT",version="v1"} 7
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="PUT",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="batch",resource="jobs",scope="resource",subresource="status",verb="PUT",version="v1"} 4
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="namespace",subresource="",verb="LIST",version="v1"} 50
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="x\"y",scope="resource",subresource="",verb="PATCH",version="v1"} 1
apiserver_request_duration_seconds_bucket{component="apiserver",verb="PUT",le="0.005"} 9
`

func TestParseRequestsKeepsWriteVerbsByResourceAndCode(t *testing.T) {
	r, err := ParseRequests(exposition)
	require.NoError(t, err)
	assert.InDelta(t, 9, r.Count("PUT", ConfigMaps, ""), 0)
	assert.InDelta(t, 2, r.Count("PUT", ConfigMaps, "409"), 0)
	assert.InDelta(t, 3, r.Count("POST", ConfigMaps, ""), 0)
	assert.Equal(t, map[string]float64{"PUT configmaps": 9, "POST configmaps": 3, "PUT jobs/status": 4, `PATCH x"y`: 1}, r.Writes(),
		"reads (LIST) and other metrics are left out; an escaped quote is part of the value")
	assert.Equal(t, `PATCH x"y=1 POST configmaps=3 PUT configmaps=9 PUT jobs/status=4`, r.Summary())
}

func TestRequestsSubIsWhatWasServedBetweenScrapes(t *testing.T) {
	before, err := ParseRequests(exposition)
	require.NoError(t, err)
	after := Requests{}
	for k, v := range before {
		after[k] = v
	}
	put := RequestKey{Verb: "PUT", Resource: "configmaps", Code: "200"}
	after[put] += 5
	d, err := after.Sub(before)
	require.NoError(t, err)
	assert.Equal(t, Requests{put: 5}, d, "unchanged series are dropped")

	after[put] = 1
	_, err = after.Sub(before)
	assert.ErrorContains(t, err, "restarted", "a counter that went down is a restarted API server, not a negative count")
}

func TestParseRequestsRefusesMalformedLines(t *testing.T) {
	for _, line := range []string{
		`apiserver_request_total{code="200" 7`,
		`apiserver_request_total{code="200"}`,
		`apiserver_request_total{code="200"} seven`,
	} {
		_, err := ParseRequests(line + "\n")
		assert.Error(t, err, line)
	}
}

func TestParseRevisionOrdersResourceVersions(t *testing.T) {
	a, err := ParseRevision("999")
	require.NoError(t, err)
	b, err := ParseRevision("1000")
	require.NoError(t, err)
	assert.Less(t, a, b, "as numbers, not as strings")
	_, err = ParseRevision("")
	assert.Error(t, err)
}
