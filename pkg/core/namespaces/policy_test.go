package namespaces_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/namespaces"
)

func TestAllows(t *testing.T) {
	open := namespaces.Policy{Release: "sc-system"}
	watched := namespaces.Policy{Release: "sc-system", Watch: []string{"team-a", "team-b", "kube-system", "sc-system"}, Denied: []string{"team-b"}}
	denied := namespaces.Policy{Release: "sc-system", Denied: []string{"payments"}}
	for _, tc := range []struct {
		name   string
		policy namespaces.Policy
		ns     string
		// why is a fragment of the refusal; "" means allowed
		why string
	}{
		{"tenant namespace, no lists", open, "team-a", ""},
		{"default namespace, no lists", open, "default", ""},
		{"release namespace", open, "sc-system", `"sc-system" is the extension's own namespace`},
		{"kube-system", open, "kube-system", `"kube-system" is a Kubernetes system namespace`},
		{"kube-public", open, "kube-public", `"kube-public" is a Kubernetes system namespace`},
		{"kube-node-lease", open, "kube-node-lease", `"kube-node-lease" is a Kubernetes system namespace`},
		{"zero policy still denies system namespaces", namespaces.Policy{}, "kube-system", "Kubernetes system namespace"},
		{"zero policy allows a tenant", namespaces.Policy{}, "team-a", ""},
		{"a release namespace of its own", namespaces.Policy{Release: "sc-ext"}, "sc-system", ""},
		{"empty namespace", open, "", "no namespace given"},
		{"denied list", denied, "payments", `"payments" is in deniedNamespaces`},
		{"not on the denied list", denied, "team-a", ""},
		{"watched", watched, "team-a", ""},
		{"not watched", watched, "team-c", `"team-c" is not in watchNamespaces (team-a, team-b, kube-system, sc-system)`},
		{"watched and denied: denied wins", watched, "team-b", `"team-b" is in deniedNamespaces`},
		{"a watched system namespace stays denied", watched, "kube-system", "Kubernetes system namespace"},
		{"a watched release namespace stays denied", watched, "sc-system", "the extension's own namespace"},
		{"names are exact, not prefixes", namespaces.Policy{Watch: []string{"team"}}, "team-a", "not in watchNamespaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Allows(tc.ns)
			if tc.why == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, errors.Is(err, namespaces.ErrNotAllowed), "wraps ErrNotAllowed: %v", err)
			assert.Contains(t, err.Error(), tc.why)
		})
	}
}

func TestSystemIsACopy(t *testing.T) {
	s := namespaces.System()
	assert.Equal(t, []string{"kube-system", "kube-public", "kube-node-lease"}, s)
	s[0] = "team-a"
	assert.Error(t, namespaces.Policy{}.Allows("kube-system"), "a caller's edit of the returned slice changes nothing")
}

func TestValidate(t *testing.T) {
	assert.NoError(t, namespaces.Policy{}.Validate())
	assert.NoError(t, namespaces.Policy{Release: "sc-system", Watch: []string{"team-a"}, Denied: []string{"b-2"}}.Validate())
	err := namespaces.Policy{Release: "sc-system", Watch: []string{"Team-A"}, Denied: []string{"ok", "-bad"}}.Validate()
	require.ErrorIs(t, err, namespaces.ErrInvalidPolicy)
	assert.Contains(t, err.Error(), `watchNamespaces: "Team-A" is not a namespace name`)
	assert.Contains(t, err.Error(), `deniedNamespaces: "-bad" is not a namespace name`)
	assert.NotContains(t, err.Error(), `"ok"`)
}
