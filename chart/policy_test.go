package chart

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/charttest"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	krender "github.com/sc-extension/sc-extension/pkg/kube/render"
)

// expressions is every CEL expression of a policy: match conditions,
// variables and validations.
func expressions(p *admissionregistrationv1.ValidatingAdmissionPolicy) string {
	var b strings.Builder
	for _, m := range p.Spec.MatchConditions {
		b.WriteString(m.Expression + "\n")
	}
	for _, v := range p.Spec.Variables {
		b.WriteString(v.Expression + "\n")
	}
	for _, v := range p.Spec.Validations {
		b.WriteString(v.Expression + "\n")
	}
	return b.String()
}

func TestAdmissionPoliciesBoundAndDenying(t *testing.T) {
	r := render(t, minimal())
	policies := all[*admissionregistrationv1.ValidatingAdmissionPolicy](r)
	require.Len(t, policies, 7)
	for _, p := range policies {
		assert.Equal(t, admissionregistrationv1.Fail, *p.Spec.FailurePolicy, p.Name)
		b := find[*admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, r, p.Name)
		assert.Equal(t, p.Name, b.Spec.PolicyName)
		assert.Equal(t, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}, b.Spec.ValidationActions, p.Name)
	}
}

// Each policy is about the chart's own ServiceAccounts, named as the API
// server names them, and the denied namespaces include the release's own,
// the cluster's and the user's.
func TestAdmissionPoliciesMatchTheIdentities(t *testing.T) {
	r := render(t, with(map[string]any{"deniedNamespaces": []any{"payments"}}))
	job := expressions(find[*admissionregistrationv1.ValidatingAdmissionPolicy](t, r, "sc-extension-job"))
	assert.Contains(t, job, "request.userInfo.username == 'system:serviceaccount:"+releaseNamespace+":sc-job'")
	assert.Contains(t, job, `!(request.namespace in ["`+releaseNamespace+`","kube-system","kube-public","kube-node-lease","payments"])`)
	for _, name := range []string{"sc-extension-agent", "sc-extension-agent-jobs"} {
		assert.Contains(t, expressions(find[*admissionregistrationv1.ValidatingAdmissionPolicy](t, r, name)),
			"request.userInfo.username == 'system:serviceaccount:"+releaseNamespace+":sc-agent'", name)
	}
	for _, name := range []string{"sc-extension-job-workloads", "sc-extension-job-daemonsets", "sc-extension-job-cronjobs"} {
		w := expressions(find[*admissionregistrationv1.ValidatingAdmissionPolicy](t, r, name))
		assert.Contains(t, w, "request.userInfo.username == 'system:serviceaccount:"+releaseNamespace+":sc-job'", name)
		assert.Contains(t, w, `!(request.namespace in ["`+releaseNamespace+`","kube-system","kube-public","kube-node-lease","payments"])`, name)
	}
	owner := expressions(find[*admissionregistrationv1.ValidatingAdmissionPolicy](t, r, "sc-extension-owner-label"))
	assert.Contains(t, owner, "'system:serviceaccount:"+releaseNamespace+":sc-job', 'system:serviceaccount:"+releaseNamespace+":sc-agent'")
}

// The agent may launch only the image the chart tells it to launch.
func TestAgentJobPolicyPinsTheConfiguredImage(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"defaults": minimal(),
		"pinned":   with(map[string]any{"image.registry": "myregistry.azurecr.io", "image.job.tag": "1.2.3"}),
	} {
		t.Run(name, func(t *testing.T) {
			r := render(t, vals)
			var image string
			for _, a := range find[*appsv1.Deployment](t, r, "sc-agent").Spec.Template.Spec.Containers[0].Args {
				if v, ok := strings.CutPrefix(a, "--job-image="); ok {
					image = v
				}
			}
			require.NotEmpty(t, image)
			p := find[*admissionregistrationv1.ValidatingAdmissionPolicy](t, r, "sc-extension-agent-jobs")
			assert.Contains(t, expressions(p), "c.image == '"+image+"'")
			assert.Contains(t, expressions(p), "variables.pod.serviceAccountName == 'sc-job'")
		})
	}
}

// The name patterns the policies allow match every name the product
// renders, and not the release's own Secrets.
func TestAdmissionPolicyNamesMatchWhatIsRendered(t *testing.T) {
	r := render(t, minimal())
	patterns := func(policy string) []*regexp.Regexp {
		var out []*regexp.Regexp
		for _, m := range regexp.MustCompile(`\.matches\('([^']+)'\)`).FindAllStringSubmatch(
			expressions(find[*admissionregistrationv1.ValidatingAdmissionPolicy](t, r, policy)), -1) {
			out = append(out, regexp.MustCompile(m[1]))
		}
		return out
	}
	anyMatch := func(res []*regexp.Regexp, name string) bool {
		return slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(name) })
	}
	job, agent := patterns("sc-extension-job"), patterns("sc-extension-agent")
	for _, name := range []string{"c1", "My_Conn.With.Dots", strings.Repeat("x", 80)} {
		id := connection.ObjectID(name)
		for _, n := range []string{connection.SecretName(id), krender.SecretProviderClassName(id), connection.ConfigMapName(id), connection.CredentialSecretName(id)} {
			assert.True(t, anyMatch(job, n), "sc-job may write %s", n)
			assert.True(t, anyMatch(agent, n) || !strings.HasPrefix(n, "sc-conn-"), "the agent may write %s", n)
		}
	}
	assert.True(t, anyMatch(job, connection.ServiceAccountName("4A8E6F3C-0000-4000-8000-00000000ABCD")))
	for _, n := range []string{"sc-nats-credentials", "sc-agent-key-x", "foo", "nats-sc-conn-x-cred"} {
		assert.False(t, anyMatch(agent, n), "agent pattern matches %s", n)
	}
	for _, n := range []string{"sc-nats-credentials", "sc-agent-key", "foo", "default"} {
		assert.False(t, anyMatch(job, n), "sc-job pattern matches %s", n)
	}
}

func TestAdmissionPoliciesCanBeTurnedOff(t *testing.T) {
	r := render(t, with(map[string]any{"admissionPolicies.enabled": false}))
	assert.Empty(t, all[*admissionregistrationv1.ValidatingAdmissionPolicy](r))
	assert.Empty(t, all[*admissionregistrationv1.ValidatingAdmissionPolicyBinding](r))
}

// A cluster older than 1.30 does not serve the v1 API: the install says
// what to set instead of failing on an unknown kind.
func TestAdmissionPoliciesOnOlderClusters(t *testing.T) {
	c := loadChart(t)
	vals, err := charttest.ValuesForCluster(c, minimal(), releaseNamespace, true, "v1.29.4")
	require.NoError(t, err)
	_, err = charttest.RenderValues(c, vals)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "admissionPolicies.enabled=false")

	vals, err = charttest.ValuesForCluster(c, with(map[string]any{"admissionPolicies.enabled": false}), releaseNamespace, true, "v1.29.4")
	require.NoError(t, err)
	_, err = charttest.RenderValues(c, vals)
	require.NoError(t, err)

	vals, err = charttest.ValuesForCluster(c, minimal(), releaseNamespace, true, "v1.30.0")
	require.NoError(t, err)
	_, err = charttest.RenderValues(c, vals)
	require.NoError(t, err)
}

func egressPorts(rules []networkingv1.NetworkPolicyEgressRule) map[int32][]string {
	out := map[int32][]string{}
	for _, r := range rules {
		for _, p := range r.Ports {
			var cidrs []string
			for _, to := range r.To {
				if to.IPBlock != nil {
					cidrs = append(cidrs, to.IPBlock.CIDR)
				}
			}
			out[p.Port.IntVal] = append(out[p.Port.IntVal], cidrs...)
		}
	}
	return out
}

func TestNetworkPolicies(t *testing.T) {
	r := render(t, with(map[string]any{"nats.url": "nats://10.0.0.5:4222,tls://nats.example.com:7422,tls://10.0.0.6"}))
	agent := find[*networkingv1.NetworkPolicy](t, r, "sc-agent")
	assert.Equal(t, "agent", agent.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"])
	assert.ElementsMatch(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}, agent.Spec.PolicyTypes)
	require.Len(t, agent.Spec.Ingress, 1)
	require.Len(t, agent.Spec.Ingress[0].Ports, 1)
	assert.EqualValues(t, 8080, agent.Spec.Ingress[0].Ports[0].Port.IntVal, "only the probe/metrics port")
	assert.Equal(t, map[int32][]string{
		443: nil, 6443: nil, // the API server
		4222: {"10.0.0.5/32", "10.0.0.6/32"}, // NATS by address; tls:// without a port is 4222 too
		7422: nil,                            // NATS by host name: the port only
		53:   nil,
	}, egressPorts(agent.Spec.Egress))

	job := find[*networkingv1.NetworkPolicy](t, r, "sc-job")
	assert.Empty(t, job.Spec.Ingress, "sc-job accepts nothing")
	assert.Contains(t, job.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
	assert.Equal(t, map[int32][]string{443: nil, 6443: nil}, egressPorts(job.Spec.Egress), "sc-job reaches only the API server")
	// It selects the agent's sc-job pods and the render hook's.
	assert.Equal(t, "job", job.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"])
	assert.ElementsMatch(t, []string{"sc-job", "sc-extension"}, job.Spec.PodSelector.MatchExpressions[0].Values)

	r = render(t, with(map[string]any{
		"networkPolicy.apiServer.cidrs": []any{"10.1.0.4/32"},
		"networkPolicy.apiServer.ports": []any{6443},
		"networkPolicy.nats.cidrs":      []any{"10.2.0.0/24"},
	}))
	assert.Equal(t, map[int32][]string{6443: {"10.1.0.4/32"}, 4222: {"10.2.0.0/24"}, 53: nil},
		egressPorts(find[*networkingv1.NetworkPolicy](t, r, "sc-agent").Spec.Egress))
	assert.Equal(t, map[int32][]string{6443: {"10.1.0.4/32"}},
		egressPorts(find[*networkingv1.NetworkPolicy](t, r, "sc-job").Spec.Egress))

	r = render(t, with(map[string]any{"networkPolicy.enabled": false}))
	assert.Empty(t, all[*networkingv1.NetworkPolicy](r))
}

// Every container the chart renders, and every sc-job pod the agent
// launches (--job-resources), requests and limits ephemeral storage.
func TestEphemeralStorageEveryContainer(t *testing.T) {
	r := render(t, minimal())
	n := 0
	for _, o := range r.objects {
		for _, spec := range podSpecs(o) {
			for _, c := range spec.Containers {
				n++
				assert.False(t, c.Resources.Requests.StorageEphemeral().IsZero(), "%s/%s request", objectName(o), c.Name)
				assert.False(t, c.Resources.Limits.StorageEphemeral().IsZero(), "%s/%s limit", objectName(o), c.Name)
			}
		}
	}
	assert.Equal(t, 3, n)
	args := find[*appsv1.Deployment](t, r, "sc-agent").Spec.Template.Spec.Containers[0].Args
	assert.True(t, slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "--job-resources=") && strings.Contains(a, `"ephemeral-storage":"128Mi"`)
	}), "%v", args)
}
