package chart

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSchemaAcceptsDocumentedValues(t *testing.T) {
	c := loadChart(t)
	for name, vals := range variants {
		_, err := values(t, c, vals)
		assert.NoError(t, err, name)
	}
	_, err := values(t, c, with(map[string]any{
		"nats.url":           "tls://a.example:4222,tls://b.example:4222",
		"job.keepFailedFor":  "1h30m",
		"resources.requests": map[string]any{"cpu": "100m", "memory": "128Mi"},
		"image.registry":     "",
	}))
	assert.NoError(t, err)
}

// Each bad value is rejected with a message naming its field, the way
// `helm install` reports it.
func TestSchemaRejectsBadValues(t *testing.T) {
	c := loadChart(t)
	cases := []struct {
		name  string
		vals  map[string]any
		field string
	}{
		{"defaults lack cluster.id", map[string]any{"nats": map[string]any{"url": "nats://x:4222"}}, "/cluster/id"},
		{"defaults lack nats.url", map[string]any{"cluster": map[string]any{"id": "c1"}}, "/nats/url"},
		{"cluster id uppercase", with(map[string]any{"cluster.id": "Prod"}), "/cluster/id"},
		{"cluster id with a dot", with(map[string]any{"cluster.id": "a.b"}), "/cluster/id"},
		{"cluster id too long", with(map[string]any{"cluster.id": "a234567890123456789012345678901234567890123456789012345678901234"}), "/cluster/id"},
		{"nats url without scheme", with(map[string]any{"nats.url": "10.0.0.5:4222"}), "/nats/url"},
		{"credentials format", with(map[string]any{"nats.credentialsFormat": "token"}), "/nats/credentialsFormat"},
		{"credentials in values", with(map[string]any{"nats.password": "x"}), "password"},
		{"credentials Secret the agent writes", with(map[string]any{"nats.credentialsSecret": "sc-agent-key"}), "/nats/credentialsSecret"},
		{"credentials Secret named like a connection's", with(map[string]any{"nats.credentialsSecret": "sc-conn-x-cred"}), "/nats/credentialsSecret"},
		{"TLS CA Secret name invalid", with(map[string]any{"nats.tls.caSecret": "NATS_CA"}), "/nats/tls/caSecret"},
		{"TLS client Secret the agent writes", with(map[string]any{"nats.tls.clientSecret": "sc-agent-key"}), "/nats/tls/clientSecret"},
		{"TLS client Secret named like a connection's", with(map[string]any{"nats.tls.clientSecret": "sc-conn-x-cred"}), "/nats/tls/clientSecret"},
		{"TLS key material in values", with(map[string]any{"nats.tls.key": "-----BEGIN"}), "/nats/tls"},
		{"TLS not a map", with(map[string]any{"nats.tls": true}), "/nats/tls"},
		{"admission policies not a bool", with(map[string]any{"admissionPolicies.enabled": "yes"}), "/admissionPolicies/enabled"},
		{"network policy CIDR without a prefix", with(map[string]any{"networkPolicy.apiServer.cidrs": []any{"10.0.0.1"}}), "/networkPolicy/apiServer/cidrs/0"},
		{"network policy port zero", with(map[string]any{"networkPolicy.apiServer.ports": []any{0}}), "/networkPolicy/apiServer/ports/0"},
		{"pull policy", with(map[string]any{"image.pullPolicy": "Sometimes"}), "/image/pullPolicy"},
		{"job pull policy", with(map[string]any{"image.job.pullPolicy": "sometimes"}), "/image/job/pullPolicy"},
		{"tag with a colon", with(map[string]any{"image.tag": "a:b"}), "/image/tag"},
		{"log level", with(map[string]any{"logLevel": "verbose"}), "/logLevel"},
		{"zero replicas", with(map[string]any{"replicaCount": 0}), "/replicaCount"},
		{"fractional replicas", with(map[string]any{"replicaCount": 1.5}), "/replicaCount"},
		{"metrics port privileged", with(map[string]any{"metrics.port": 80}), "/metrics/port"},
		{"metrics port too high", with(map[string]any{"metrics.port": 70000}), "/metrics/port"},
		{"negative backoff", with(map[string]any{"job.backoffLimit": -1}), "/job/backoffLimit"},
		{"deadline too short", with(map[string]any{"job.activeDeadlineSeconds": 5}), "/job/activeDeadlineSeconds"},
		{"keepFailedFor not a duration", with(map[string]any{"job.keepFailedFor": "an hour"}), "/job/keepFailedFor"},
		{"keepFailedFor bare number", with(map[string]any{"job.keepFailedFor": "3600"}), "/job/keepFailedFor"},
		{"watch namespace invalid", with(map[string]any{"watchNamespaces": []any{"Team_A"}}), "/watchNamespaces/0"},
		{"denied namespaces duplicate", with(map[string]any{"deniedNamespaces": []any{"a", "a"}}), "/deniedNamespaces"},
		{"toleration operator", with(map[string]any{"tolerations": []any{map[string]any{"key": "k", "operator": "In"}}}), "/tolerations/0/operator"},
		{"resources typo", with(map[string]any{"resources": map[string]any{"limit": map[string]any{"cpu": "1"}}}), "/resources"},
		{"quantity", with(map[string]any{"job.resources": map[string]any{"limits": map[string]any{"memory": "lots"}}}), "/job/resources/limits/memory"},
		{"unknown top-level key", with(map[string]any{"replicas": 2}), "additional properties 'replicas' not allowed"},
		{"job log format", with(map[string]any{"job.logFormat": "xml"}), "/job/logFormat"},
		// The clients' rates stay rates: bounded at ten times the defaults,
		// and never unset (an unset qps rendered --kube-api-qps= and left
		// the agent on client-go's 5/s; an unset workers rendered 0).
		{"kube API qps unbounded", with(map[string]any{"kubeAPI.qps": 5000}), "/kubeAPI/qps"},
		{"kube API burst unbounded", with(map[string]any{"kubeAPI.burst": 100000}), "/kubeAPI/burst"},
		{"kube API qps unset", with(map[string]any{"kubeAPI.qps": nil}), "missing property 'qps'"},
		{"kube API unset", with(map[string]any{"kubeAPI": nil}), "missing property 'kubeAPI'"},
		{"job qps zero", with(map[string]any{"job.qps": 0}), "/job/qps"},
		{"job qps unbounded", with(map[string]any{"job.qps": 100000}), "/job/qps"},
		{"job burst unbounded", with(map[string]any{"job.burst": 1000000}), "/job/burst"},
		{"job workers too many", with(map[string]any{"job.workers": 1000}), "/job/workers"},
		{"job qps unset", with(map[string]any{"job.qps": nil}), "missing property 'qps'"},
		{"job workers unset", with(map[string]any{"job.workers": nil}), "missing property 'workers'"},
		{"service monitor interval", with(map[string]any{"metrics.serviceMonitor.interval": "30"}), "/metrics/serviceMonitor/interval"},
		{"service monitor typo", with(map[string]any{"metrics.serviceMonitor.intervall": "30s"}), "/metrics/serviceMonitor"},
		{"global not a map", with(map[string]any{"global": "x"}), "/global"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := values(t, c, tc.vals)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
}
