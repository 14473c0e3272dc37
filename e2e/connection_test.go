//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// TestConnectionLifecycle creates, updates and deletes one connection of
// each auth type and checks what lands in the target namespace, including
// a real pod consuming the Secret through envFrom as in the seed.
func TestConnectionLifecycle(t *testing.T) {
	e := product(t)
	cases := []struct {
		auth     catalog.AuthType
		target   catalog.TargetType
		targetID string
	}{
		{catalog.AuthSecret, catalog.TargetStorageBlob, blobID},
		{catalog.AuthWorkloadIdentity, catalog.TargetStorageBlob, blobID},
		{catalog.AuthServicePrincipal, catalog.TargetKeyVault, vaultID},
	}
	for _, tc := range cases {
		t.Run(string(tc.auth), func(t *testing.T) {
			ns := e.targetNamespace(t)
			ctx := context.Background()
			cs := e.cluster.Clientset
			name := uniq("Life_") + string(tc.auth)
			id := connection.ObjectID(name)
			spec, creds := buildSpec(t, name, ns, tc.target, tc.auth, tc.targetID)

			ev := e.apply(t, protocol.OpCreate, spec, creds)
			require.Equal(t, connection.PhaseSucceeded, ev.Phase, "%s: %s", ev.Reason, ev.Message)
			sec, err := getSecret(ctx, cs, ns, connection.SecretName(id))
			require.NoError(t, err)
			assertSecretMatches(t, sec, spec, creds)
			assertServiceAccount(t, e, ns, tc.auth == catalog.AuthWorkloadIdentity)
			e.assertWorkloadSees(t, ns, connection.SecretName(id), spec, tc.auth == catalog.AuthWorkloadIdentity)

			// update: a changed non-credential value and a rotated credential
			for i := range spec.Configurations {
				if !spec.Configurations[i].Credential {
					spec.Configurations[i].Value = "updated-" + spec.Configurations[i].Name
					break
				}
			}
			for k := range creds {
				creds[k] = newCredential()
			}
			ev = e.apply(t, protocol.OpUpdate, spec, creds)
			require.Equal(t, connection.PhaseSucceeded, ev.Phase, "%s: %s", ev.Reason, ev.Message)
			assert.EqualValues(t, 2, ev.Generation)
			sec, err = getSecret(ctx, cs, ns, connection.SecretName(id))
			require.NoError(t, err)
			assertSecretMatches(t, sec, spec, creds)

			// delete with resource removal: everything rendered is gone, records too
			ev = e.remove(t, name, true)
			require.Equal(t, connection.PhaseDeleted, ev.Phase)
			_, err = getSecret(ctx, cs, ns, connection.SecretName(id))
			assert.True(t, apierrors.IsNotFound(err), "rendered Secret removed: %v", err)
			_, err = cs.CoreV1().ServiceAccounts(ns).Get(ctx, connection.ServiceAccountName(clientID), metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "workload-identity ServiceAccount removed with its last user: %v", err)
			// The record goes once the agent has published Deleted and
			// released its status finalizer: just after the event, not before.
			eventually(t, time.Minute, "the record to be removed", func(ctx context.Context) (bool, error) {
				_, err := cs.CoreV1().ConfigMaps(systemNS).Get(ctx, connection.ConfigMapName(id), metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			})
			_, err = cs.CoreV1().Secrets(systemNS).Get(ctx, connection.CredentialSecretName(id), metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "credential record removed: %v", err)
		})
	}
}

// TestDeleteKeepsRenderedObjectsByDefault follows the original service:
// deleting a connection leaves what it rendered.
func TestDeleteKeepsRenderedObjectsByDefault(t *testing.T) {
	e := product(t)
	ns := e.targetNamespace(t)
	spec, creds := buildSpec(t, uniq("keepme"), ns, catalog.TargetStorageBlob, catalog.AuthWorkloadIdentity, blobID)
	require.Equal(t, connection.PhaseSucceeded, e.apply(t, protocol.OpCreate, spec, creds).Phase)
	require.Equal(t, connection.PhaseDeleted, e.remove(t, spec.Name, false).Phase)

	ctx := context.Background()
	_, err := getSecret(ctx, e.cluster.Clientset, ns, connection.SecretName(uniq("keepme")))
	assert.NoError(t, err, "Secret kept")
	_, err = e.cluster.Clientset.CoreV1().ServiceAccounts(ns).Get(ctx, connection.ServiceAccountName(clientID), metav1.GetOptions{})
	assert.NoError(t, err, "ServiceAccount kept")
}

func assertSecretMatches(t *testing.T, sec *corev1.Secret, spec connection.Spec, creds connection.Credentials) {
	t.Helper()
	assert.Equal(t, "sc-extension", sec.Labels["app.kubernetes.io/managed-by"])
	assert.NotEmpty(t, sec.Annotations["servicelinker.sc-extension.io/data-hash"])
	want := map[string]string{}
	for _, c := range spec.Configurations {
		v := c.Value
		if c.Credential {
			v = creds[c.Name]
		}
		want[spec.RenderedKey(c.Name)] = v
	}
	got := map[string]string{}
	for k, v := range sec.Data {
		got[k] = string(v)
	}
	assert.Equal(t, want, got)
}

func assertServiceAccount(t *testing.T, e *env, ns string, want bool) {
	t.Helper()
	sa, err := e.cluster.Clientset.CoreV1().ServiceAccounts(ns).Get(context.Background(), connection.ServiceAccountName(clientID), metav1.GetOptions{})
	if !want {
		assert.True(t, apierrors.IsNotFound(err), "no ServiceAccount without workload identity: %v", err)
		return
	}
	require.NoError(t, err)
	assert.Equal(t, clientID, sa.Annotations["azure.workload.identity/client-id"])
	assert.Equal(t, tenantID, sa.Annotations["azure.workload.identity/tenant-id"])
}

// assertWorkloadSees runs the seed's sample workload (envFrom the Secret,
// the ServiceAccount for workload identity) under Pod Security "restricted"
// and checks every key reached the container, credentials masked in its log.
func (e *env) assertWorkloadSees(t *testing.T, ns, secret string, spec connection.Spec, workloadIdentity bool) {
	t.Helper()
	ctx := context.Background()
	cs := e.cluster.Clientset
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sample-app", Namespace: ns, Labels: map[string]string{"azure.workload.identity/use": "true"}},
		Spec: corev1.PodSpec{
			RestartPolicy:   corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "app", Image: "localhost/sc-extension/sampleapp:dev", ImagePullPolicy: corev1.PullNever,
				EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secret}}}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), RunAsUser: ptr.To[int64](65532),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, ReadOnlyRootFilesystem: ptr.To(true)},
			}},
		},
	}
	if workloadIdentity {
		pod.Spec.ServiceAccountName = connection.ServiceAccountName(clientID)
	}
	_, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err, "a restricted pod consuming the Secret is admitted")
	var phase corev1.PodPhase
	eventually(t, opTimeout, "sample-app to finish", func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		phase = p.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
	})
	b, err := cs.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	require.NoError(t, err)
	logs := string(b)
	require.Equal(t, corev1.PodSucceeded, phase, logs)
	for _, c := range spec.Configurations {
		if c.Credential {
			assert.Contains(t, logs, spec.RenderedKey(c.Name)+"=<credential,")
		} else {
			assert.Contains(t, logs, fmt.Sprintf("%s=%s\n", spec.RenderedKey(c.Name), c.Value))
		}
	}
	require.NoError(t, cs.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}))
}
