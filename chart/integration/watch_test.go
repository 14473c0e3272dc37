//go:build integration

package chart_integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/charttest"
	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
)

// With watchNamespaces set, sc-job's write grant is bound per watched
// namespace: RBAC itself, before any admission policy, keeps it out of
// every namespace it does not watch and out of a watched one that is denied.
func TestWatchNamespacesBindSCJobPerNamespace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k := kubetest.New(t)
	const release = "sc-watch"
	for _, n := range []string{release, "watched-a", "watched-denied", "unwatched"} {
		kubetest.Namespace(t, kubetest.Name(n))
	}
	r, err := charttest.Render(map[string]any{
		"cluster":          map[string]any{"id": "c1"},
		"nats":             map[string]any{"url": "nats://10.0.0.5:4222"},
		"watchNamespaces":  []any{"watched-a", "watched-denied"},
		"deniedNamespaces": []any{"watched-denied"},
	}, release)
	require.NoError(t, err)
	applyAll(ctx, t, t, k, r.Objects)
	_, err = k.Clientset.CoreV1().Secrets(release).Create(ctx, secret(release, "sc-conn-c1-cred", map[string]string{managedBy: ours}, corev1.SecretTypeOpaque), metav1.CreateOptions{})
	require.NoError(t, err)

	job := impersonate(t, k, "system:serviceaccount:"+release+":sc-job",
		"system:serviceaccounts", "system:serviceaccounts:"+release, "system:authenticated")
	labelled := map[string]string{managedBy: ours}
	create := func(namespace string) action {
		return action{do: createSecret(secret(namespace, "sc-c1-secret", labelled, corev1.SecretTypeOpaque))}
	}
	// RBAC answers through an informer: wait for the RoleBinding to count.
	first := create("watched-a")
	require.Eventually(t, func() bool { return first.do(ctx, job) == nil }, 30*time.Second, 100*time.Millisecond,
		"sc-job renders into a watched namespace")

	for _, a := range []action{
		{name: "render into an unwatched namespace", want: rbac, do: create("unwatched").do},
		{name: "render into a watched but denied namespace", want: rbac, do: create("watched-denied").do},
		{name: "render into kube-system", want: rbac, do: create("kube-system").do},
		{name: "render into its release namespace", want: rbac, do: create(release).do},
		{name: "read the credentials", want: allowed, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoreV1().Secrets(release).Get(ctx, "sc-conn-c1-cred", metav1.GetOptions{})
			return err
		}},
	} {
		t.Run(a.name, func(t *testing.T) { checkAction(ctx, t, job, a) })
	}
}
