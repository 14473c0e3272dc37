//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/e2e/testbed/apiwrites"
)

// productResources are the kinds of object a connection costs writes of:
// its record ConfigMap, credential and rendered Secrets, ServiceAccounts
// and the Events about it (issue 9 counts Events in).
var productResources = map[string]bool{"configmaps": true, "secrets": true, "serviceaccounts": true, "events": true}

// apiWriteCount is the API server's own count of the writes served
// between start and done (apiserver_request_total, every response code:
// a refused write cost a request too).
type apiWriteCount struct {
	before apiwrites.Requests
}

func startWriteCount(t *testing.T, e *env) *apiWriteCount {
	r, err := apiwrites.Scrape(context.Background(), e.cluster.Clientset)
	require.NoError(t, err)
	return &apiWriteCount{before: r}
}

// done returns the writes to productResources per connection over n, and
// every write verb and resource served meanwhile, for the report.
func (c *apiWriteCount) done(t *testing.T, e *env, n int) (float64, string) {
	now, err := apiwrites.Scrape(context.Background(), e.cluster.Clientset)
	require.NoError(t, err)
	diff, err := now.Sub(c.before)
	require.NoError(t, err)
	return writesPer(diff.Writes(), n)
}

// notObjectWrites are subresources whose POST creates no object: the
// kubelet's TokenRequests for sc-job's pods. Listed, not counted.
var notObjectWrites = map[string]bool{"serviceaccounts/token": true}

// writesPer divides the writes to productResources (subresources such as
// status included) by n and lists them, sorted.
func writesPer(w map[string]float64, n int) (float64, string) {
	var sum float64
	var parts []string
	for k, v := range w {
		_, full, _ := strings.Cut(k, " ")
		res, _, _ := strings.Cut(full, "/")
		if !productResources[res] {
			continue
		}
		if notObjectWrites[full] {
			parts = append(parts, fmt.Sprintf("%s=%.0f (not counted)", k, v))
			continue
		}
		sum += v
		parts = append(parts, fmt.Sprintf("%s=%.0f", k, v))
	}
	sort.Strings(parts)
	return sum / float64(n), strings.Join(parts, ", ")
}

func TestWritesPerCountsProductResourcesOnly(t *testing.T) {
	per, list := writesPer(map[string]float64{
		"POST configmaps": 10, "PUT configmaps": 20, "POST secrets": 20, "POST events": 10,
		"PUT configmaps/status": 0, "POST jobs": 1, "DELETE jobs": 1, "PUT leases": 30, "POST pods/binding": 1,
		"POST serviceaccounts/token": 3,
	}, 10)
	require.InDelta(t, 6.0, per, 1e-9)
	require.Equal(t, "POST configmaps=10, POST events=10, POST secrets=20, POST serviceaccounts/token=3 (not counted), PUT configmaps/status=0, PUT configmaps=20", list)
}
