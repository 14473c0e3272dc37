package chart

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
)

// grants evaluates RBAC the way the authorizer does, for the subset the chart
// uses: Roles bound in their namespace, ClusterRoles bound cluster-wide.
type grants struct {
	namespaced map[string][]rbacv1.PolicyRule // namespace -> rules
	cluster    []rbacv1.PolicyRule
}

func grantsFor(t *testing.T, r rendered, serviceAccount string) grants {
	t.Helper()
	g := grants{namespaced: map[string][]rbacv1.PolicyRule{}}
	bound := func(subjects []rbacv1.Subject) bool {
		return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == serviceAccount && s.Namespace == releaseNamespace
		})
	}
	for _, rb := range all[*rbacv1.RoleBinding](r) {
		if !bound(rb.Subjects) {
			continue
		}
		// A RoleBinding may grant a ClusterRole's rules in its own namespace
		// (sc-job's writes, per watched namespace).
		if rb.RoleRef.Kind == "ClusterRole" {
			g.namespaced[rb.Namespace] = append(g.namespaced[rb.Namespace], find[*rbacv1.ClusterRole](t, r, rb.RoleRef.Name).Rules...)
			continue
		}
		require.Equal(t, "Role", rb.RoleRef.Kind)
		role := find[*rbacv1.Role](t, r, rb.RoleRef.Name)
		require.Equal(t, rb.Namespace, role.Namespace)
		g.namespaced[rb.Namespace] = append(g.namespaced[rb.Namespace], role.Rules...)
	}
	for _, crb := range all[*rbacv1.ClusterRoleBinding](r) {
		if bound(crb.Subjects) {
			g.cluster = append(g.cluster, find[*rbacv1.ClusterRole](t, r, crb.RoleRef.Name).Rules...)
		}
	}
	return g
}

func (g grants) allows(verb, group, resource, namespace, name string) bool {
	rules := g.cluster
	if namespace != "" {
		rules = append(slices.Clone(rules), g.namespaced[namespace]...)
	}
	for _, r := range rules {
		if slices.Contains(r.Verbs, verb) && slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) &&
			(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, name)) {
			return true
		}
	}
	return false
}

var writeVerbs = []string{"create", "update", "patch", "delete", "deletecollection"}

func TestRBACNoWildcards(t *testing.T) {
	r := render(t, minimal())
	var rules []rbacv1.PolicyRule
	for _, cr := range all[*rbacv1.ClusterRole](r) {
		rules = append(rules, cr.Rules...)
	}
	for _, role := range all[*rbacv1.Role](r) {
		rules = append(rules, role.Rules...)
	}
	for _, rule := range rules {
		for _, list := range [][]string{rule.Verbs, rule.APIGroups, rule.Resources} {
			assert.NotContains(t, list, "*", "%+v", rule)
		}
		assert.NotContains(t, rule.Verbs, "escalate")
		assert.NotContains(t, rule.Verbs, "bind")
		assert.NotContains(t, rule.Verbs, "impersonate")
	}
}

func TestRBACAgent(t *testing.T) {
	g := grantsFor(t, render(t, minimal()), "sc-agent")

	// Nothing cluster-wide but reads: above all, no Secret writes outside sc-system.
	for _, rule := range g.cluster {
		for _, v := range rule.Verbs {
			assert.Contains(t, []string{"get", "list", "watch"}, v, "cluster-wide %+v", rule)
		}
	}
	for _, v := range writeVerbs {
		assert.False(t, g.allows(v, "", "secrets", "team-a", "sc-x-secret"), "agent may not %s Secrets in team-a", v)
		assert.False(t, g.allows(v, "", "serviceaccounts", "team-a", "sc-account-x"), v)
	}
	for _, res := range []string{"secrets", "serviceaccounts", "namespaces"} {
		for _, v := range []string{"get", "list", "watch"} {
			assert.True(t, g.allows(v, "", res, "team-a", ""), "drift watch needs %s %s", v, res)
		}
	}
	// validate reads the workloads a connection binds, one by name.
	for _, w := range []struct{ group, res string }{{"apps", "deployments"}, {"apps", "statefulsets"}, {"apps", "daemonsets"}, {"batch", "cronjobs"}} {
		assert.True(t, g.allows("get", w.group, w.res, "team-a", "app"), w.res)
		assert.False(t, g.allows("list", w.group, w.res, "team-a", ""), w.res)
		assert.False(t, g.allows("patch", w.group, w.res, "team-a", "app"), w.res)
	}

	// In sc-system: records, credential Secrets, the key Secret, sc-job, its Lease, Events.
	for _, res := range []string{"configmaps", "secrets"} {
		for _, v := range []string{"get", "list", "watch", "create", "update", "delete"} {
			assert.True(t, g.allows(v, "", res, releaseNamespace, "sc-agent-key"), "%s %s", v, res)
		}
	}
	for _, v := range []string{"create", "get", "list", "watch", "delete"} {
		assert.True(t, g.allows(v, "batch", "jobs", releaseNamespace, "sc-job"), v)
	}
	assert.False(t, g.allows("update", "batch", "jobs", releaseNamespace, "sc-job"))
	assert.True(t, g.allows("create", "coordination.k8s.io", "leases", releaseNamespace, ""))
	assert.True(t, g.allows("update", "coordination.k8s.io", "leases", releaseNamespace, "sc-agent"))
	assert.False(t, g.allows("update", "coordination.k8s.io", "leases", releaseNamespace, "kube-controller-manager"))
	assert.True(t, g.allows("create", "", "events", releaseNamespace, ""))
	assert.True(t, g.allows("create", "events.k8s.io", "events", releaseNamespace, ""))
	assert.False(t, g.allows("create", "", "pods", releaseNamespace, ""))
	assert.False(t, g.allows("create", "", "configmaps", "team-a", ""))
}

func TestRBACJob(t *testing.T) {
	g := grantsFor(t, render(t, minimal()), "sc-job")

	for _, res := range []string{"secrets", "serviceaccounts"} {
		for _, v := range []string{"create", "get", "update", "delete"} {
			assert.True(t, g.allows(v, "", res, "team-a", "sc-x"), "%s %s", v, res)
		}
		// by name only: sc-job can never enumerate Secrets anywhere; it
		// writes with update, never patch
		for _, v := range []string{"list", "watch", "patch"} {
			assert.False(t, g.allows(v, "", res, "kube-system", ""), "%s %s", v, res)
		}
	}
	for _, v := range []string{"create", "get", "update", "delete"} {
		assert.True(t, g.allows(v, "secrets-store.csi.x-k8s.io", "secretproviderclasses", "team-a", "x"), v)
	}
	assert.True(t, g.allows("get", "", "namespaces", "", "team-a"))
	assert.True(t, g.allows("get", "apiextensions.k8s.io", "customresourcedefinitions", "", "secretproviderclasses.secrets-store.csi.x-k8s.io"))
	assert.False(t, g.allows("get", "apiextensions.k8s.io", "customresourcedefinitions", "", "other.example.com"))

	// Workload binding: get and patch (server-side apply) of the four
	// workload kinds, list for the restart-on-change annotation; never
	// create, delete, update or watch.
	for _, w := range []struct{ group, res string }{{"apps", "deployments"}, {"apps", "statefulsets"}, {"apps", "daemonsets"}, {"batch", "cronjobs"}} {
		for _, v := range []string{"get", "list", "patch"} {
			assert.True(t, g.allows(v, w.group, w.res, "team-a", "app"), "%s %s", v, w.res)
		}
		for _, v := range []string{"create", "update", "delete", "watch"} {
			assert.False(t, g.allows(v, w.group, w.res, "team-a", "app"), "%s %s", v, w.res)
		}
	}
	assert.False(t, g.allows("patch", "", "pods", "team-a", "x"))
	assert.False(t, g.allows("update", "apps", "deployments/scale", "team-a", "app"))

	// Outside sc-system, nothing but Secrets, ServiceAccounts and
	// SecretProviderClasses is written, and workloads patched.
	written := map[string]bool{}
	for _, rule := range g.cluster {
		if slices.ContainsFunc(rule.Verbs, func(v string) bool { return slices.Contains(writeVerbs, v) }) {
			for _, res := range rule.Resources {
				written[res] = true
			}
		}
	}
	assert.Equal(t, map[string]bool{"secrets": true, "serviceaccounts": true, "secretproviderclasses": true,
		"deployments": true, "statefulsets": true, "daemonsets": true, "cronjobs": true}, written)

	// In sc-system: status into records, records of deleted connections removed,
	// credentials read, Events, and only its own Job deleted.
	for _, v := range []string{"get", "list", "update", "patch", "delete"} {
		assert.True(t, g.allows(v, "", "configmaps", releaseNamespace, "sc-conn-x"), v)
	}
	assert.False(t, g.allows("create", "", "configmaps", releaseNamespace, ""))
	assert.False(t, g.allows("delete", "", "configmaps", "team-a", "sc-conn-x"))
	assert.True(t, g.allows("get", "", "secrets", releaseNamespace, "sc-conn-x-cred"))
	assert.True(t, g.allows("delete", "", "secrets", releaseNamespace, "sc-conn-x-cred"), "an applied deletion removes the credential Secret")
	assert.True(t, g.allows("create", "", "events", releaseNamespace, ""))
	assert.True(t, g.allows("delete", "batch", "jobs", releaseNamespace, "sc-job"))
	assert.True(t, g.allows("delete", "batch", "jobs", releaseNamespace, "sc-job-render"))
	assert.True(t, g.allows("get", "batch", "jobs", releaseNamespace, "sc-job"), "a run reads its own Job before deleting it")
	assert.False(t, g.allows("get", "batch", "jobs", releaseNamespace, "other"))
	assert.False(t, g.allows("list", "batch", "jobs", releaseNamespace, ""))
	assert.False(t, g.allows("delete", "batch", "jobs", releaseNamespace, "other"))
	assert.False(t, g.allows("create", "batch", "jobs", releaseNamespace, "sc-job"))
	assert.False(t, g.allows("update", "coordination.k8s.io", "leases", releaseNamespace, "sc-agent"))
}

// With watchNamespaces set, sc-job's writes are bound per watched namespace
// (never a denied one): RBAC alone keeps it out of every other namespace.
func TestRBACJobWatchNamespaces(t *testing.T) {
	r := render(t, with(map[string]any{
		"watchNamespaces":  []any{"team-a", "team-b", "kube-system", releaseNamespace},
		"deniedNamespaces": []any{"team-b"},
	}))
	g := grantsFor(t, r, "sc-job")
	for _, rule := range g.cluster {
		for _, res := range rule.Resources {
			assert.NotContains(t, []string{"secrets", "serviceaccounts", "secretproviderclasses"}, res, "cluster-wide %+v", rule)
		}
	}
	for _, crb := range all[*rbacv1.ClusterRoleBinding](r) {
		assert.NotEqual(t, "sc-extension-job-write", crb.RoleRef.Name)
	}
	for _, res := range []string{"secrets", "serviceaccounts"} {
		assert.True(t, g.allows("create", "", res, "team-a", "sc-x"), res)
		for _, ns := range []string{"team-b", "kube-system", "team-c"} {
			assert.False(t, g.allows("create", "", res, ns, "sc-x"), "%s in %s", res, ns)
		}
	}
	assert.True(t, g.allows("create", "secrets-store.csi.x-k8s.io", "secretproviderclasses", "team-a", "x"))
	assert.False(t, g.allows("create", "", "secrets", releaseNamespace, "sc-x"))
	assert.True(t, g.allows("delete", "", "secrets", releaseNamespace, "sc-conn-x-cred"))
}
