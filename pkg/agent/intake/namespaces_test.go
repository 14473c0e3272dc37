package intake_test

import (
	"testing"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
)

// A request whose connection targets a namespace the policy refuses ends
// Failed/NamespaceDenied with a message naming the field and the rule, and
// never reaches the store; the connection's stored state is untouched.
func TestNamespacePolicyRejectsBeforeStoring(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	e.agent(true, func(o *intake.Options) {
		o.Namespaces = namespaces.Policy{Release: "sc-ext", Watch: []string{"default", "team-a", "payments"}, Denied: []string{"payments"}}
	})
	ctx := ctxT(t)
	spec, creds := e.spec("blob1")
	events := e.statuses("blob1")

	for _, tc := range []struct{ ns, why string }{
		{"kube-system", `scope: namespace not allowed: "kube-system" is a Kubernetes system namespace`},
		{"kube-public", `scope: namespace not allowed: "kube-public" is a Kubernetes system namespace`},
		{"kube-node-lease", `scope: namespace not allowed: "kube-node-lease" is a Kubernetes system namespace`},
		{"sc-ext", `scope: namespace not allowed: "sc-ext" is the extension's own namespace, which holds the connections' credentials`},
		{"payments", `scope: namespace not allowed: "payments" is in deniedNamespaces`},
		{"team-b", `scope: namespace not allowed: "team-b" is not in watchNamespaces (default, team-a, payments)`},
	} {
		t.Run(tc.ns, func(t *testing.T) {
			s := spec
			s.Scope = tc.ns
			id, err := e.cp.Create(ctx, s, creds)
			require.NoError(t, err)
			ev := await(t, events, "rejection of "+tc.ns, ofRequest(id))
			assert.Equal(t, connection.PhaseFailed, ev.Phase)
			assert.Equal(t, intake.ReasonNamespaceDenied, ev.Reason)
			assert.Equal(t, "NamespaceDenied", ev.Reason, "the reason is part of the protocol")
			assert.Equal(t, tc.why, ev.Message)
			assert.Equal(t, int64(0), ev.Generation, "describes no stored connection")
			e.settled()
		})
	}
	calls, applied := e.store.snapshot()
	assert.Zero(t, calls, "no refused request reached the store")
	assert.Empty(t, applied)
	assert.NotContains(t, e.logs.String(), `"delivered":2`, "refused requests are terminated, not redelivered")
	assert.NotContains(t, e.logs.String(), e.secret)

	// An allowed create is stored; moving it into a denied namespace is
	// refused and leaves the stored spec as it was; deleting it is allowed.
	created, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	accepted := await(t, events, "accepted create", ofRequest(created))
	require.Equal(t, intake.ReasonAccepted, accepted.Reason)
	moved := spec
	moved.Scope = "kube-system"
	updated, err := e.cp.Update(ctx, moved, creds)
	require.NoError(t, err)
	ev := await(t, events, "refused update", ofRequest(updated))
	assert.Equal(t, intake.ReasonNamespaceDenied, ev.Reason)
	e.settled()
	stored, err := e.store.Get(ctx, connection.ObjectID("blob1"))
	require.NoError(t, err)
	assert.Equal(t, "default", stored.Spec.Scope)
	assert.Equal(t, int64(1), stored.Generation)
	_, applied = e.store.snapshot()
	assert.Equal(t, []string{created}, applied)

	deleted, err := e.cp.Delete(ctx, "blob1", false)
	require.NoError(t, err)
	ev = await(t, events, "accepted delete", ofRequest(deleted))
	assert.Equal(t, intake.ReasonAccepted, ev.Reason)
}

// A watch list with a name no namespace can have would refuse every
// request; the agent fails to start instead.
func TestNewRefusesAnInvalidNamespacePolicy(t *testing.T) {
	key, err := nkeys.CreateCurveKeys()
	require.NoError(t, err)
	_, err = intake.New(nil, intake.Options{Cluster: cluster, Key: key, Store: newStore(), Status: &countingStatus{},
		Namespaces: namespaces.Policy{Release: "sc-system", Watch: []string{"Team-A"}}})
	require.ErrorIs(t, err, namespaces.ErrInvalidPolicy)
	assert.Contains(t, err.Error(), `watchNamespaces: "Team-A"`)
}
