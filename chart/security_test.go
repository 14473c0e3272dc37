package chart

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// variants covers every template branch that changes a pod.
var variants = map[string]map[string]any{
	"defaults":      minimal(),
	"userPassword":  with(map[string]any{"nats.credentialsSecret": "sc-nats"}),
	"credsFile":     with(map[string]any{"nats.credentialsSecret": "sc-nats", "nats.credentialsFormat": "creds"}),
	"natsTLS":       with(map[string]any{"nats.url": "tls://nats.example:4222", "nats.tls.caSecret": "nats-ca", "nats.tls.clientSecret": "nats-client"}),
	"replicas":      with(map[string]any{"replicaCount": 3, "priorityClassName": "system-cluster-critical"}),
	"noTolerations": with(map[string]any{"tolerations": []any{}, "nodeSelector": map[string]any{}}),
}

// Every pod the chart can render passes Pod Security "restricted", checked by
// the same evaluator the API server's admission plugin uses.
func TestPodSecurityRestricted(t *testing.T) {
	for name, vals := range variants {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, 3, assertRestricted(t, render(t, vals)), "agent Deployment, render hook Job, test Pod")
		})
	}
}

// assertRestricted checks every pod template of r against Pod Security
// "restricted" and returns how many it checked.
func assertRestricted(t *testing.T, r rendered) int {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks())
	require.NoError(t, err)
	level := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	pods := 0
	for _, o := range r.objects {
		for _, spec := range podSpecs(o) {
			pods++
			meta := &metav1.ObjectMeta{Name: objectName(o), Namespace: releaseNamespace}
			for _, res := range evaluator.EvaluatePod(level, meta, spec) {
				assert.True(t, res.Allowed, "%s: %s: %s", objectName(o), res.ForbiddenReason, res.ForbiddenDetail)
			}
		}
	}
	return pods
}

// The evaluator accepts several spellings; these are the ones we promise.
func TestSecurityContextsExplicit(t *testing.T) {
	r := render(t, minimal())
	for _, o := range r.objects {
		for _, spec := range podSpecs(o) {
			psc := spec.SecurityContext
			require.NotNil(t, psc, objectName(o))
			assert.Equal(t, true, *psc.RunAsNonRoot)
			assert.EqualValues(t, 65532, *psc.RunAsUser)
			assert.EqualValues(t, 65532, *psc.RunAsGroup)
			assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)
			for _, c := range spec.Containers {
				sc := c.SecurityContext
				require.NotNil(t, sc, "%s/%s", objectName(o), c.Name)
				assert.False(t, *sc.AllowPrivilegeEscalation)
				assert.True(t, *sc.ReadOnlyRootFilesystem)
				assert.True(t, *sc.RunAsNonRoot)
				assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
				assert.Empty(t, sc.Capabilities.Add)
				assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type)
				assert.NotNil(t, c.Resources.Limits.Memory(), "%s has a memory limit", c.Name)
			}
			// Only pods that call the API server get a token.
			require.NotNil(t, spec.AutomountServiceAccountToken, objectName(o))
			_, isTest := o.(*corev1.Pod)
			assert.Equal(t, !isTest, *spec.AutomountServiceAccountToken, objectName(o))
		}
	}
}
