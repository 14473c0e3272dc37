package jobrun

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
)

// A stored record whose namespace the policy refuses (stored before the
// policy, or by an agent told another one) is never rendered: sc-job does
// not read its credentials or touch its namespace, and marks it Failed with
// the intake's reason, on the slow backoff of any permanent failure. The
// namespaces exist, so nothing but the policy stops the render.
func TestRecordInDeniedNamespaceIsFailedNotRendered(t *testing.T) {
	var nss []*corev1.Namespace
	for _, ns := range []string{"kube-system", "payments", "team-b"} {
		nss = append(nss, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	f := newFixture(t, ownJob(), nss[0], nss[1], nss[2])
	policy := func(c *Config) {
		c.Namespaces = namespaces.Policy{Watch: []string{target, "kube-system", sys, "payments"}, Denied: []string{"payments"}}
	}
	f.apply(f.secretChange("ok"))
	denied := map[string]string{
		"sys":       `"kube-system" is a Kubernetes system namespace`,
		"release":   `"sc-system" is the extension's own namespace, which holds the connections' credentials`,
		"listed":    `"payments" is in deniedNamespaces`,
		"unwatched": `"team-b" is not in watchNamespaces (team-a, kube-system, sc-system, payments)`,
	}
	f.apply(f.inNamespace(f.secretChange("sys"), "kube-system"))
	f.apply(f.inNamespace(f.secretChange("release"), sys))
	f.apply(f.inNamespace(f.secretChange("listed"), "payments"))
	f.apply(f.inNamespace(f.secretChange("unwatched"), "team-b"))
	f.client.ClearActions()

	sum, err := f.runner(at(t0, "sc-job-1"), policy).Run(context.Background())
	require.ErrorIs(t, err, ErrFailed, "new permanent failures fail the run that found them, as any other")
	assert.Equal(t, 1, sum.Rendered)
	require.Len(t, sum.Failures, len(denied))
	assert.True(t, jobExists(t, f))
	for name, why := range denied {
		c := f.get(name)
		assert.Equal(t, connection.PhaseFailed, c.Status.Phase, name)
		assert.Equal(t, ReasonNamespaceDenied, c.Status.Reason, name)
		assert.Equal(t, "NamespaceDenied", c.Status.Reason, "the same reason the intake reports")
		assert.Equal(t, `connection "`+name+`" failed at step check-namespace: namespace not allowed: `+why, c.Status.Message)
		assert.Equal(t, t0.Add(connection.FailedBase), *c.Status.RetryAfter)
		assert.Empty(t, c.Status.Resources)
		assert.Contains(t, f.events(), "Warning NamespaceDenied sc-conn-"+name+": "+c.Status.Message)
	}
	assert.Contains(t, f.out.String(), "(ErrNotAllowed)")
	for _, a := range fakeactions.Of(f.client) {
		if strings.Contains(a, " secrets ") || strings.Contains(a, " serviceaccounts ") || strings.Contains(a, " namespaces ") {
			assert.True(t, a == "get secrets sc-system/sc-conn-ok-cred" || strings.HasSuffix(a, " "+target+"/sc-ok-secret") || a == "get namespaces /"+target,
				"only the allowed connection's credentials, namespace and Secret are read or written: %s", a)
		}
	}

	// The slow retry is refused the same way: not news, so the run passes.
	sum, err = f.runner(at(t0.Add(connection.FailedBase), "sc-job-2"), policy).Run(context.Background())
	require.NoError(t, err)
	assert.Len(t, sum.StillFailing, len(denied))
	assert.Equal(t, 2, f.get("sys").Status.Attempts)

	// Without the policy's lists the unwatched namespace is allowed again:
	// the record renders on its next due run, the system one still never.
	sum, err = f.runner(at(t0.Add(connection.FailedBase*4), "sc-job-3")).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, sum.Rendered, "payments and team-b render without the lists")
	assert.Equal(t, connection.PhaseSucceeded, f.get("unwatched").Status.Phase)
	assert.Equal(t, connection.PhaseFailed, f.get("sys").Status.Phase)
	assert.Equal(t, connection.PhaseFailed, f.get("release").Status.Phase, "the release namespace defaults to the records' own")
}

// A delete is never refused: a record in a denied namespace stays removable.
func TestDeleteOfRecordInDeniedNamespaceCompletes(t *testing.T) {
	f := newFixture(t, ownJob())
	f.apply(f.inNamespace(f.secretChange("sys"), "kube-system"))
	_, err := f.runner().Run(context.Background())
	require.ErrorIs(t, err, ErrFailed)
	require.Equal(t, ReasonNamespaceDenied, f.get("sys").Status.Reason)

	f.apply(connection.Change{RequestID: f.requestID(), Spec: connection.Spec{Name: "sys"}, Delete: true})
	sum, err := f.runner(at(t0.Add(connection.FailedBase), "sc-job-2")).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Deleted)
	_, err = f.store.Get(context.Background(), connection.ObjectID("sys"))
	assert.Error(t, err, "the record is gone")
}

// A delete with deleteResources of a connection whose namespace became
// denied after it rendered removes the record and keeps the objects: sc-job
// never writes in a denied namespace, and a delete refused there for good
// would leave the record stuck.
func TestDeleteWithResourcesInDeniedNamespaceKeepsThem(t *testing.T) {
	f := newFixture(t, ownJob())
	f.apply(f.secretChange("db1"))
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, connection.PhaseSucceeded, f.get("db1").Status.Phase)

	f.apply(connection.Change{RequestID: f.requestID(), Spec: connection.Spec{Name: "db1"}, Delete: true, DeleteResources: true})
	f.client.ClearActions()
	f.logs.Reset()
	sum, err := f.runner(func(c *Config) { c.Namespaces = namespaces.Policy{Denied: []string{target}} }).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Deleted)
	_, err = f.store.Get(context.Background(), connection.ObjectID("db1"))
	assert.Error(t, err, "the record is gone")
	for _, a := range fakeactions.Writes(f.client.Actions()) {
		assert.NotContains(t, a, " "+target+"/", "nothing written or deleted in the denied namespace: %s", a)
	}
	_, err = f.client.CoreV1().Secrets(target).Get(context.Background(), "sc-db1-secret", metav1.GetOptions{})
	assert.NoError(t, err, "the rendered Secret is kept")
	assert.Contains(t, f.events(), `Warning NamespaceDenied sc-conn-db1: deleting the connection but not its 1 rendered objects: `+
		`namespace not allowed: "team-a" is in deniedNamespaces; delete them by hand`)
	assert.Contains(t, f.logs.String(), `keep Secret team-a/sc-db1-secret (kept)`)
}
