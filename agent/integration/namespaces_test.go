//go:build integration

package agent_integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sc-extension/sc-extension/internal/testkit/devservertest"
	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

// The agent binary enforces the namespace policy of its flags at intake:
// a create for its own namespace, a system namespace, a denied one or one
// outside the watch list ends Failed/NamespaceDenied and leaves no record;
// an allowed one is stored, and sc-job's Job carries the same policy.
func TestAgentRefusesDeniedNamespaces(t *testing.T) {
	bin := buildAgent(t)
	client := kubetest.New(t, kubetest.QPS(100, 200)).Clientset
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns := kubetest.Namespace(t, kubetest.Prefix("sc-system-"))

	srv := devservertest.Start(t, devserver.Options{Clusters: []string{cluster}})
	agentUser, ok := srv.Cluster(cluster)
	require.True(t, ok)
	healthAddr := freeAddr(t)
	logs := &devservertest.LogBuffer{}
	cmd := exec.Command(bin,
		"--cluster="+cluster, "--namespace="+ns, "--kubeconfig="+kubetest.Kubeconfig(t),
		"--nats-url="+srv.ClientURL(), "--metrics-addr="+healthAddr,
		"--job-image=localhost/sc-extension/job:dev", "--heartbeat-interval=1s",
		"--watch-namespaces=default,payments,kube-system", "--denied-namespaces=payments",
	)
	cmd.Env = append(os.Environ(), "POD_NAME=sc-agent-policy-0",
		"SC_NATS_USER="+agentUser.User, "SC_NATS_PASSWORD="+agentUser.Password)
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("agent output:\n%s", logs.String())
		}
	})
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		out, err := httpGet(ctx, "http://"+healthAddr+"/readyz")
		return err == nil && strings.Contains(out, "readyz check passed"), nil
	}), "agent never became ready")

	cp := devservertest.ControlPlane(t, srv, cluster, 5*time.Second)
	secret := fmt.Sprintf("cred-VALUE-%d", rand.Uint64())
	key := "AZURE_STORAGEBLOB_CONNECTIONSTRING"
	spec := func(name, scope string) connection.Spec {
		return connection.Spec{
			Name: name, Scope: scope,
			TargetService:  connection.TargetService{Type: "storage-blob", ID: "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"},
			AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
			ClientType:     "none",
			Configurations: []connection.Configuration{{Name: key, Credential: true}},
		}
	}
	for name, tc := range map[string]struct{ scope, why string }{
		"release":   {ns, `"` + ns + `" is the extension's own namespace`},
		"system":    {"kube-system", `"kube-system" is a Kubernetes system namespace`},
		"denied":    {"payments", `"payments" is in deniedNamespaces`},
		"unwatched": {"team-b", `"team-b" is not in watchNamespaces (default, payments, kube-system)`},
	} {
		id, err := cp.Create(ctx, spec(name, tc.scope), connection.Credentials{key: secret})
		require.NoError(t, err)
		ev, err := cp.Wait(ctx, name, id, nil)
		require.NoError(t, err)
		assert.Equal(t, connection.PhaseFailed, ev.Phase, name)
		assert.Equal(t, namespaces.ReasonDenied, ev.Reason, name)
		assert.Contains(t, ev.Message, "scope: namespace not allowed: "+tc.why, name)
	}
	cms, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: connection.LabelManagedBy})
	require.NoError(t, err)
	assert.Empty(t, cms.Items, "no record stored for a refused request")
	secrets, err := client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, s := range secrets.Items {
		assert.False(t, strings.HasPrefix(s.Name, "sc-conn-"), "no credential Secret stored: %s", s.Name)
	}

	id, err := cp.Create(ctx, spec("allowed", "default"), connection.Credentials{key: secret})
	require.NoError(t, err)
	var args []string
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		j, err := client.BatchV1().Jobs(ns).Get(ctx, "sc-job", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		args = j.Spec.Template.Spec.Containers[0].Args
		return true, nil
	}), "no Job sc-job for the allowed connection %s", id)
	assert.Subset(t, args, []string{"--namespace=" + ns, "--watch-namespaces=default,payments,kube-system", "--denied-namespaces=payments"})
	assert.NotContains(t, logs.String(), secret)
}
