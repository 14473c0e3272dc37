//go:build integration

package chart_integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
)

// The namespaces the policy test uses besides the release namespace: a
// tenant's (a connection target), one the values deny, and the cluster's own.
const (
	tenantNS = "team-a"
	deniedNS = "team-x"

	managedBy = "app.kubernetes.io/managed-by"
	ours      = "sc-extension"
	// jobImage is what the chart renders for image.job with the test's values.
	jobImage = "localhost/sc-extension/job:dev"
)

var (
	spcGVR = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasses"}
	crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// identity is a client acting as one user through impersonation: the API
// server authorizes and admits each request as that user, exactly as it
// does for the ServiceAccount's token.
type identity struct {
	name string
	cs   kubernetes.Interface
	dyn  dynamic.Interface
}

func impersonate(t *testing.T, k *kubetest.Clients, user string, groups ...string) identity {
	t.Helper()
	cfg := rest.CopyConfig(k.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	return identity{name: user, cs: cs, dyn: dyn}
}

func serviceAccount(t *testing.T, k *kubetest.Clients, name string) identity {
	return impersonate(t, k, "system:serviceaccount:"+ns+":"+name,
		"system:serviceaccounts", "system:serviceaccounts:"+ns, "system:authenticated")
}

// stoppedBy names the layer a forbidden action must be stopped by, so a row
// proves the policy it is about rather than passing on some other denial.
type stoppedBy int

const (
	allowed stoppedBy = iota
	rbac
	policy // a ValidatingAdmissionPolicy of the chart
)

type action struct {
	name string
	want stoppedBy
	// policyName, for want == policy: which of the chart's policies.
	policyName string
	do         func(ctx context.Context, id identity) error
}

// fixtures are what the actions work on, created by the cluster admin
// (system:masters, which the owner-label policy exempts): the release's own
// Secrets, a connection's record and credentials, what sc-job rendered
// into a tenant namespace, and the tenant's own objects.
func fixtures(ctx context.Context, t *testing.T, k *kubetest.Clients) {
	t.Helper()
	cs := k.Clientset
	for _, n := range []string{tenantNS, deniedNS} {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	labelled := map[string]string{managedBy: ours}
	secrets := []*corev1.Secret{
		secret(ns, "sc-nats", nil, corev1.SecretTypeOpaque),
		// The agent's NATS client certificate (nats.tls.clientSecret), as cert-manager writes it.
		secret(ns, "sc-agent-nats-tls", nil, corev1.SecretTypeTLS),
		secret(ns, "sc-agent-key", labelled, corev1.SecretTypeOpaque),
		secret(ns, "sc-conn-c1-cred", labelled, corev1.SecretTypeOpaque),
		secret(ns, "sc-conn-gone-cred", labelled, corev1.SecretTypeOpaque),
		secret(tenantNS, "sc-c1-secret", labelled, corev1.SecretTypeOpaque),
		secret(tenantNS, "sc-gone-secret", labelled, corev1.SecretTypeOpaque),
		secret(tenantNS, "sc-tenants-secret", nil, corev1.SecretTypeOpaque),
		secret(tenantNS, "tenant-db", nil, corev1.SecretTypeOpaque),
		secret("kube-system", "sc-planted-secret", labelled, corev1.SecretTypeOpaque),
		secret("kube-public", "sc-planted-secret", labelled, corev1.SecretTypeOpaque),
	}
	for _, s := range secrets {
		_, err := cs.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		require.NoError(t, err, "%s/%s", s.Namespace, s.Name)
	}
	for _, sa := range []*corev1.ServiceAccount{
		{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "sc-account-c1", Labels: labelled}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "sc-account-gone", Labels: labelled}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "powerful"}},
	} {
		_, err := cs.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa, metav1.CreateOptions{})
		require.NoError(t, err, sa.Name)
	}
	for _, cm := range []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sc-conn-c1", Labels: labelled}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sc-conn-gone", Labels: labelled}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other-config"}},
	} {
		_, err := cs.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{})
		require.NoError(t, err, cm.Name)
	}
	installSPCCRD(ctx, t, k)
	_, err := k.Dynamic.Resource(spcGVR).Namespace(tenantNS).Create(ctx, spc(tenantNS, "sc-gone-secretproviderclass", true), metav1.CreateOptions{})
	require.NoError(t, err)

	// A tenant who may edit everything in their namespace: RBAC lets them
	// write any Secret there, so only the owner-label policy stops them.
	_, err = cs.RbacV1().RoleBindings(tenantNS).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a-edit"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "tenant-edit"},
		Subjects:   []rbacv1.Subject{{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "team-a-devs"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant-edit"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps", "serviceaccounts"}, Verbs: []string{"get", "list", "create", "update", "patch", "delete"}},
			{APIGroups: []string{spcGVR.Group}, Resources: []string{spcGVR.Resource}, Verbs: []string{"get", "create", "update", "delete"}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// installSPCCRD serves SecretProviderClass the way the Secret Store CSI
// driver's chart does (schema left open), so the policies' rules for it run.
func installSPCCRD(ctx context.Context, t *testing.T, k *kubetest.Clients) {
	t.Helper()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": spcGVR.Resource + "." + spcGVR.Group},
		"spec": map[string]any{
			"group": spcGVR.Group,
			"names": map[string]any{"kind": "SecretProviderClass", "listKind": "SecretProviderClassList", "plural": spcGVR.Resource, "singular": "secretproviderclass"},
			"scope": "Namespaced",
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
			}},
		},
	}}
	_, err := k.Dynamic.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := k.Dynamic.Resource(spcGVR).Namespace(tenantNS).List(ctx, metav1.ListOptions{})
		return err == nil, nil
	}), "SecretProviderClass API served")
}

func secret(namespace, name string, labels map[string]string, typ corev1.SecretType) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Type:       typ,
		Data:       map[string][]byte{"k": []byte("v")},
	}
	switch typ {
	case corev1.SecretTypeTLS:
		s.Data = map[string][]byte{corev1.TLSCertKey: []byte("c"), corev1.TLSPrivateKeyKey: []byte("k")}
	case corev1.SecretTypeServiceAccountToken:
		s.Data = nil
		s.Annotations = map[string]string{corev1.ServiceAccountNameKey: "powerful"}
	}
	return s
}

func spc(namespace, name string, labelled bool) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": spcGVR.GroupVersion().String(), "kind": "SecretProviderClass",
		"metadata": map[string]any{"namespace": namespace, "name": name},
		"spec":     map[string]any{"provider": "azure"},
	}}
	if labelled {
		u.SetLabels(map[string]string{managedBy: ours})
	}
	return u
}

// theJob is the Job the agent launches (pkg/agent/launcher): sc-job's
// ServiceAccount and image, Pod Security restricted, /tmp an emptyDir.
func theJob() *batchv1.Job {
	labels := map[string]string{managedBy: ours, "app.kubernetes.io/name": "sc-job", "app.kubernetes.io/component": "job"}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sc-job", Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](1),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					ServiceAccountName:           "sc-job",
					AutomountServiceAccountToken: ptr.To(true),
					EnableServiceLinks:           ptr.To(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name: "sc-job", Image: jobImage, Args: []string{"--namespace=" + ns, "--job-name=sc-job"},
						Env: []corev1.EnvVar{{Name: "SC_LOG_FORMAT", Value: "json"}},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
							RunAsNonRoot: ptr.To(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
					}},
					Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{
						EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("16Mi"))},
					}}},
				},
			},
		},
	}
}

// jobWith is theJob changed by edit (a Job the agent must not be able to create).
func jobWith(edit func(*batchv1.Job)) *batchv1.Job {
	j := theJob()
	edit(j)
	return j
}

// Helpers that each perform one request as id. Reads the test needs to set
// a request up are made by the admin, so a denial is always the write's.

func createSecret(s *corev1.Secret) func(context.Context, identity) error {
	return func(ctx context.Context, id identity) error {
		_, err := id.cs.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		return err
	}
}

func createSA(namespace, name string, labelled bool) func(context.Context, identity) error {
	return func(ctx context.Context, id identity) error {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
		if labelled {
			sa.Labels = map[string]string{managedBy: ours}
		}
		_, err := id.cs.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{})
		return err
	}
}

func createCM(namespace, name string, labelled bool) func(context.Context, identity) error {
	return func(ctx context.Context, id identity) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
		if labelled {
			cm.Labels = map[string]string{managedBy: ours}
		}
		_, err := id.cs.CoreV1().ConfigMaps(namespace).Create(ctx, cm, metav1.CreateOptions{})
		return err
	}
}

func createJob(j *batchv1.Job) func(context.Context, identity) error {
	return func(ctx context.Context, id identity) error {
		_, err := id.cs.BatchV1().Jobs(j.Namespace).Create(ctx, j, metav1.CreateOptions{})
		return err
	}
}

func createSPC(namespace, name string, labelled bool) func(context.Context, identity) error {
	return func(ctx context.Context, id identity) error {
		_, err := id.dyn.Resource(spcGVR).Namespace(namespace).Create(ctx, spc(namespace, name, labelled), metav1.CreateOptions{})
		return err
	}
}

// updateSecret reads the Secret as the admin, edits it and writes it back as id.
func updateSecret(admin kubernetes.Interface, namespace, name string, edit func(*corev1.Secret)) func(context.Context, identity) error {
	return func(ctx context.Context, id identity) error {
		s, err := admin.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("admin get: %w", err)
		}
		edit(s)
		_, err = id.cs.CoreV1().Secrets(namespace).Update(ctx, s, metav1.UpdateOptions{})
		return err
	}
}

func updateSA(admin kubernetes.Interface, namespace, name string, edit func(*corev1.ServiceAccount)) func(context.Context, identity) error {
	return func(ctx context.Context, id identity) error {
		sa, err := admin.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("admin get: %w", err)
		}
		edit(sa)
		_, err = id.cs.CoreV1().ServiceAccounts(namespace).Update(ctx, sa, metav1.UpdateOptions{})
		return err
	}
}

func updateCM(admin kubernetes.Interface, namespace, name string, edit func(*corev1.ConfigMap)) func(context.Context, identity) error {
	return func(ctx context.Context, id identity) error {
		cm, err := admin.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("admin get: %w", err)
		}
		edit(cm)
		_, err = id.cs.CoreV1().ConfigMaps(namespace).Update(ctx, cm, metav1.UpdateOptions{})
		return err
	}
}

func deleteSecret(namespace, name string) func(context.Context, identity) error {
	return func(ctx context.Context, id identity) error {
		return id.cs.CoreV1().Secrets(namespace).Delete(ctx, name, metav1.DeleteOptions{})
	}
}

func rewrite(s *corev1.Secret) { s.Data = map[string][]byte{"k": []byte("attacker")} }

// rewriteTLS swaps the key of a kubernetes.io/tls Secret, keeping the keys
// its type requires so that only admission can refuse the update.
func rewriteTLS(s *corev1.Secret) { s.Data[corev1.TLSPrivateKeyKey] = []byte("attacker") }

func addOurLabel(m *metav1.ObjectMeta) {
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[managedBy] = ours
}

// jobActions: what sc-job must be able to do (render, update, delete in a
// tenant namespace; status and removal of records in the release
// namespace), then ≥ 20 things it must not.
func jobActions(admin kubernetes.Interface) []action {
	labelled := map[string]string{managedBy: ours}
	return []action{
		// needed
		{name: "create an Opaque sc-*-secret in a tenant namespace", want: allowed, do: createSecret(secret(tenantNS, "sc-new-secret", labelled, corev1.SecretTypeOpaque))},
		{name: "update its rendered Secret", want: allowed, do: updateSecret(admin, tenantNS, "sc-c1-secret", rewrite)},
		{name: "delete its rendered Secret", want: allowed, do: deleteSecret(tenantNS, "sc-gone-secret")},
		{name: "create a workload-identity ServiceAccount", want: allowed, do: createSA(tenantNS, "sc-account-0000-new", true)},
		{name: "update its ServiceAccount", want: allowed, do: updateSA(admin, tenantNS, "sc-account-c1", func(sa *corev1.ServiceAccount) {
			sa.Annotations = map[string]string{"azure.workload.identity/client-id": "c1"}
		})},
		{name: "delete its ServiceAccount", want: allowed, do: func(ctx context.Context, id identity) error {
			return id.cs.CoreV1().ServiceAccounts(tenantNS).Delete(ctx, "sc-account-gone", metav1.DeleteOptions{})
		}},
		{name: "create a SecretProviderClass", want: allowed, do: createSPC(tenantNS, "sc-c1-secretproviderclass", true)},
		{name: "delete its SecretProviderClass", want: allowed, do: func(ctx context.Context, id identity) error {
			return id.dyn.Resource(spcGVR).Namespace(tenantNS).Delete(ctx, "sc-gone-secretproviderclass", metav1.DeleteOptions{})
		}},
		{name: "get a target namespace", want: allowed, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoreV1().Namespaces().Get(ctx, tenantNS, metav1.GetOptions{})
			return err
		}},
		{name: "get the SecretProviderClass CRD", want: allowed, do: func(ctx context.Context, id identity) error {
			_, err := id.dyn.Resource(crdGVR).Get(ctx, spcGVR.Resource+"."+spcGVR.Group, metav1.GetOptions{})
			return err
		}},
		{name: "read a credential Secret", want: allowed, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoreV1().Secrets(ns).Get(ctx, "sc-conn-c1-cred", metav1.GetOptions{})
			return err
		}},
		{name: "write a record's status", want: allowed, do: updateCM(admin, ns, "sc-conn-c1", func(cm *corev1.ConfigMap) {
			cm.Data = map[string]string{"status": "Succeeded"}
		})},
		{name: "delete a removed connection's credential Secret", want: allowed, do: deleteSecret(ns, "sc-conn-gone-cred")},
		{name: "delete a removed connection's record", want: allowed, do: func(ctx context.Context, id identity) error {
			return id.cs.CoreV1().ConfigMaps(ns).Delete(ctx, "sc-conn-gone", metav1.DeleteOptions{})
		}},
		{name: "record an Event", want: allowed, do: createEvent(ns)},
		{name: "delete its own Job", want: allowed, do: func(ctx context.Context, id identity) error {
			return id.cs.BatchV1().Jobs(ns).Delete(ctx, "sc-job", metav1.DeleteOptions{})
		}},

		// forbidden: a path to cluster-admin, the release's credentials, other tenants' objects
		{name: "create a service-account-token Secret in kube-system", want: policy, policyName: "sc-extension-job",
			do: createSecret(secret("kube-system", "sc-x-secret", labelled, corev1.SecretTypeServiceAccountToken))},
		{name: "create an Opaque labelled sc-*-secret in kube-system", want: policy, policyName: "sc-extension-job",
			do: createSecret(secret("kube-system", "sc-x-secret", labelled, corev1.SecretTypeOpaque))},
		{name: "update a labelled Secret planted in kube-system", want: policy, policyName: "sc-extension-job",
			do: updateSecret(admin, "kube-system", "sc-planted-secret", rewrite)},
		{name: "delete a labelled Secret in kube-public", want: policy, policyName: "sc-extension-job", do: deleteSecret("kube-public", "sc-planted-secret")},
		{name: "create a ServiceAccount in kube-node-lease", want: policy, policyName: "sc-extension-job", do: createSA("kube-node-lease", "sc-account-x", true)},
		{name: "create a Secret in a namespace of deniedNamespaces", want: policy, policyName: "sc-extension-job",
			do: createSecret(secret(deniedNS, "sc-x-secret", labelled, corev1.SecretTypeOpaque))},
		{name: "create a service-account-token Secret in a tenant namespace", want: policy, policyName: "sc-extension-job",
			do: createSecret(secret(tenantNS, "sc-x-secret", labelled, corev1.SecretTypeServiceAccountToken))},
		{name: "create a kubernetes.io/tls sc-x-secret", want: policy, policyName: "sc-extension-job",
			do: createSecret(secret(tenantNS, "sc-x-secret", labelled, corev1.SecretTypeTLS))},
		{name: "create Secret foo in a tenant namespace", want: policy, policyName: "sc-extension-job",
			do: createSecret(secret(tenantNS, "foo", labelled, corev1.SecretTypeOpaque))},
		{name: "create an unlabelled sc-*-secret", want: policy, policyName: "sc-extension-job",
			do: createSecret(secret(tenantNS, "sc-x-secret", nil, corev1.SecretTypeOpaque))},
		{name: "adopt a tenant's sc-*-secret by labelling it", want: policy, policyName: "sc-extension-job",
			do: updateSecret(admin, tenantNS, "sc-tenants-secret", func(s *corev1.Secret) { addOurLabel(&s.ObjectMeta); rewrite(s) })},
		{name: "delete a tenant's Secret", want: policy, policyName: "sc-extension-job", do: deleteSecret(tenantNS, "tenant-db")},
		{name: "create ServiceAccount attacker", want: policy, policyName: "sc-extension-job", do: createSA(tenantNS, "attacker", true)},
		{name: "create SecretProviderClass foo", want: policy, policyName: "sc-extension-job", do: createSPC(tenantNS, "foo", true)},
		{name: "create a SecretProviderClass in kube-system", want: policy, policyName: "sc-extension-job", do: createSPC("kube-system", "sc-x-secretproviderclass", true)},
		{name: "update the NATS credentials sc-nats", want: policy, policyName: "sc-extension-job", do: updateSecret(admin, ns, "sc-nats", rewrite)},
		{name: "delete the NATS credentials", want: policy, policyName: "sc-extension-job", do: deleteSecret(ns, "sc-nats")},
		{name: "update the NATS TLS Secret", want: policy, policyName: "sc-extension-job", do: updateSecret(admin, ns, "sc-agent-nats-tls", rewriteTLS)},
		{name: "delete the NATS TLS Secret", want: policy, policyName: "sc-extension-job", do: deleteSecret(ns, "sc-agent-nats-tls")},
		{name: "update the agent key sc-agent-key", want: policy, policyName: "sc-extension-job", do: updateSecret(admin, ns, "sc-agent-key", rewrite)},
		{name: "delete the agent key", want: policy, policyName: "sc-extension-job", do: deleteSecret(ns, "sc-agent-key")},
		{name: "overwrite a credential Secret", want: policy, policyName: "sc-extension-job", do: updateSecret(admin, ns, "sc-conn-c1-cred", rewrite)},
		{name: "create a Secret in the release namespace", want: policy, policyName: "sc-extension-job",
			do: createSecret(secret(ns, "sc-x-secret", labelled, corev1.SecretTypeOpaque))},
		{name: "update a ConfigMap that is no record", want: policy, policyName: "sc-extension-job",
			do: updateCM(admin, ns, "other-config", func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"x": "y"} })},
		{name: "patch its rendered Secret", want: rbac, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoreV1().Secrets(tenantNS).Patch(ctx, "sc-c1-secret", types.MergePatchType, []byte(`{"data":{"k":"eA=="}}`), metav1.PatchOptions{})
			return err
		}},
		{name: "list Secrets in kube-system", want: rbac, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
			return err
		}},
		{name: "mint a token for a kube-system ServiceAccount", want: rbac, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, "powerful", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
			return err
		}},
		{name: "create a record", want: rbac, do: createCM(ns, "sc-conn-new", true)},
		{name: "create a ConfigMap in a tenant namespace", want: rbac, do: createCM(tenantNS, "sc-conn-x", true)},
		{name: "create a Job", want: rbac, do: createJob(theJob())},
		{name: "create a Pod in a tenant namespace", want: rbac, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoreV1().Pods(tenantNS).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}, metav1.CreateOptions{})
			return err
		}},
		{name: "bind itself a role in a tenant namespace", want: rbac, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.RbacV1().RoleBindings(tenantNS).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "x"},
				RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "admin"},
				Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sc-job", Namespace: ns}},
			}, metav1.CreateOptions{})
			return err
		}},
		{name: "edit an admission policy", want: rbac, do: func(ctx context.Context, id identity) error {
			return id.cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, "sc-extension-job", metav1.DeleteOptions{})
		}},
	}
}

func createEvent(namespace string) func(context.Context, identity) error {
	return func(ctx context.Context, id identity) error {
		_, err := id.cs.EventsV1().Events(namespace).Create(ctx, &eventsv1.Event{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "sc-"}, EventTime: metav1.NowMicro(),
			Regarding: corev1.ObjectReference{Kind: "ConfigMap", Namespace: namespace, Name: "sc-conn-c1"},
			Reason:    "Test", Action: "Test", Type: corev1.EventTypeNormal,
			ReportingController: "sc-extension.io/test", ReportingInstance: "test",
		}, metav1.CreateOptions{})
		return err
	}
}

// agentActions: records, credential Secrets and sc-job's Job in the release
// namespace, then ≥ 20 things it must not.
func agentActions(admin kubernetes.Interface) []action {
	labelled := map[string]string{managedBy: ours}
	const jobs = "sc-extension-agent-jobs"
	return []action{
		// needed
		{name: "create a credential Secret", want: allowed, do: createSecret(secret(ns, "sc-conn-new-cred", labelled, corev1.SecretTypeOpaque))},
		{name: "update a credential Secret", want: allowed, do: updateSecret(admin, ns, "sc-conn-c1-cred", rewrite)},
		{name: "create a record", want: allowed, do: createCM(ns, "sc-conn-new", true)},
		{name: "update a record", want: allowed, do: updateCM(admin, ns, "sc-conn-c1", func(cm *corev1.ConfigMap) {
			cm.Data = map[string]string{"spec": "{}"}
		})},
		{name: "read its key", want: allowed, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoreV1().Secrets(ns).Get(ctx, "sc-agent-key", metav1.GetOptions{})
			return err
		}},
		{name: "list Secrets in every namespace (drift)", want: allowed, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: managedBy + "=" + ours})
			return err
		}},
		{name: "launch sc-job", want: allowed, do: createJob(theJob())},
		{name: "create its Lease", want: allowed, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "sc-agent"}}, metav1.CreateOptions{})
			return err
		}},
		{name: "record an Event", want: allowed, do: createEvent(ns)},

		// forbidden: the Job it launches
		{name: "create a Job running another ServiceAccount", want: policy, policyName: jobs,
			do: createJob(jobWith(func(j *batchv1.Job) { j.Spec.Template.Spec.ServiceAccountName = "sc-agent" }))},
		{name: "create a Job running another image", want: policy, policyName: jobs,
			do: createJob(jobWith(func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Image = "busybox:latest" }))},
		{name: "create a Job named other than sc-job", want: policy, policyName: jobs,
			do: createJob(jobWith(func(j *batchv1.Job) { j.Name = "miner" }))},
		{name: "create a Job mounting a hostPath", want: policy, policyName: jobs, do: createJob(jobWith(func(j *batchv1.Job) {
			j.Spec.Template.Spec.Volumes = append(j.Spec.Template.Spec.Volumes, corev1.Volume{Name: "root",
				VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
		}))},
		{name: "create a Job mounting the NATS credentials", want: policy, policyName: jobs, do: createJob(jobWith(func(j *batchv1.Job) {
			j.Spec.Template.Spec.Volumes = append(j.Spec.Template.Spec.Volumes, corev1.Volume{Name: "nats",
				VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sc-nats"}}})
		}))},
		{name: "create a Job reading a Secret into its environment", want: policy, policyName: jobs, do: createJob(jobWith(func(j *batchv1.Job) {
			j.Spec.Template.Spec.Containers[0].Env = append(j.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "P",
				ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sc-nats"}, Key: "password"}}})
		}))},
		{name: "create a privileged Job", want: policy, policyName: jobs, do: createJob(jobWith(func(j *batchv1.Job) {
			j.Spec.Template.Spec.Containers[0].SecurityContext.Privileged = ptr.To(true)
			j.Spec.Template.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
		}))},
		{name: "create a Job adding NET_ADMIN", want: policy, policyName: jobs, do: createJob(jobWith(func(j *batchv1.Job) {
			j.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		}))},
		{name: "create a Job on the host network", want: policy, policyName: jobs,
			do: createJob(jobWith(func(j *batchv1.Job) { j.Spec.Template.Spec.HostNetwork = true }))},
		{name: "create a Job in the host PID namespace", want: policy, policyName: jobs,
			do: createJob(jobWith(func(j *batchv1.Job) { j.Spec.Template.Spec.HostPID = true }))},
		{name: "create a Job pinned to a node", want: policy, policyName: jobs,
			do: createJob(jobWith(func(j *batchv1.Job) { j.Spec.Template.Spec.NodeName = "node-a" }))},
		{name: "create a Job with an init container", want: policy, policyName: jobs, do: createJob(jobWith(func(j *batchv1.Job) {
			j.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "init", Image: jobImage}}
		}))},
		{name: "create a Job with a second container", want: policy, policyName: jobs, do: createJob(jobWith(func(j *batchv1.Job) {
			c := j.Spec.Template.Spec.Containers[0]
			c.Name = "second"
			j.Spec.Template.Spec.Containers = append(j.Spec.Template.Spec.Containers, c)
		}))},
		// forbidden: the release's other Secrets and objects
		{name: "update the NATS credentials sc-nats", want: policy, policyName: "sc-extension-agent", do: updateSecret(admin, ns, "sc-nats", rewrite)},
		{name: "delete the NATS credentials", want: policy, policyName: "sc-extension-agent", do: deleteSecret(ns, "sc-nats")},
		{name: "update the NATS TLS Secret", want: policy, policyName: "sc-extension-agent", do: updateSecret(admin, ns, "sc-agent-nats-tls", rewriteTLS)},
		{name: "delete the NATS TLS Secret", want: policy, policyName: "sc-extension-agent", do: deleteSecret(ns, "sc-agent-nats-tls")},
		{name: "create Secret foo in the release namespace", want: policy, policyName: "sc-extension-agent",
			do: createSecret(secret(ns, "foo", labelled, corev1.SecretTypeOpaque))},
		{name: "create a service-account-token credential Secret", want: policy, policyName: "sc-extension-agent",
			do: createSecret(secret(ns, "sc-conn-x-cred", labelled, corev1.SecretTypeServiceAccountToken))},
		{name: "create an unlabelled credential Secret", want: policy, policyName: "sc-extension-agent",
			do: createSecret(secret(ns, "sc-conn-x-cred", nil, corev1.SecretTypeOpaque))},
		{name: "create a ConfigMap that is no record", want: policy, policyName: "sc-extension-agent", do: createCM(ns, "kube-root-ca.crt.evil", true)},
		{name: "update a ConfigMap that is no record", want: policy, policyName: "sc-extension-agent",
			do: updateCM(admin, ns, "other-config", func(cm *corev1.ConfigMap) { cm.Data = map[string]string{"x": "y"} })},
		{name: "strip the ownership label from a record", want: policy, policyName: "sc-extension-agent",
			do: updateCM(admin, ns, "sc-conn-c1", func(cm *corev1.ConfigMap) { delete(cm.Labels, managedBy) })},
		// forbidden by RBAC: anything outside the release namespace
		{name: "create a Secret in a tenant namespace", want: rbac, do: createSecret(secret(tenantNS, "sc-x-secret", labelled, corev1.SecretTypeOpaque))},
		{name: "update a rendered Secret", want: rbac, do: updateSecret(admin, tenantNS, "sc-c1-secret", rewrite)},
		{name: "create a Secret in kube-system", want: rbac, do: createSecret(secret("kube-system", "sc-x-secret", labelled, corev1.SecretTypeServiceAccountToken))},
		{name: "create a ServiceAccount", want: rbac, do: createSA(tenantNS, "sc-account-x", true)},
		{name: "create a Job in a tenant namespace", want: rbac, do: createJob(jobWith(func(j *batchv1.Job) { j.Namespace = tenantNS }))},
		{name: "update sc-job's Job", want: rbac, do: func(ctx context.Context, id identity) error {
			j := theJob()
			j.Annotations = map[string]string{"x": "y"}
			_, err := id.cs.BatchV1().Jobs(ns).Update(ctx, j, metav1.UpdateOptions{})
			return err
		}},
		{name: "create a Pod", want: rbac, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}, metav1.CreateOptions{})
			return err
		}},
		{name: "take another Lease", want: rbac, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoordinationV1().Leases(ns).Update(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.UpdateOptions{})
			return err
		}},
		{name: "mint a token for sc-job", want: rbac, do: func(ctx context.Context, id identity) error {
			_, err := id.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "sc-job", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
			return err
		}},
	}
}

// tenantActions: a tenant allowed by RBAC to edit every Secret in its
// namespace still cannot plant an object carrying our label.
func tenantActions(admin kubernetes.Interface) []action {
	const p = "sc-extension-owner-label"
	return []action{
		{name: "create its own Secret", want: allowed, do: createSecret(secret(tenantNS, "mine", nil, corev1.SecretTypeOpaque))},
		{name: "edit a Secret sc-job rendered (drift puts it back)", want: allowed, do: updateSecret(admin, tenantNS, "sc-c1-secret", rewrite)},
		{name: "create a labelled Secret", want: policy, policyName: p,
			do: createSecret(secret(tenantNS, "sc-evil-secret", map[string]string{managedBy: ours}, corev1.SecretTypeOpaque))},
		{name: "label its own Secret", want: policy, policyName: p, do: updateSecret(admin, tenantNS, "tenant-db", func(s *corev1.Secret) { addOurLabel(&s.ObjectMeta) })},
		{name: "create a labelled ServiceAccount", want: policy, policyName: p, do: createSA(tenantNS, "sc-account-evil", true)},
		{name: "create a labelled ConfigMap", want: policy, policyName: p, do: createCM(tenantNS, "sc-conn-evil", true)},
		{name: "create a labelled SecretProviderClass", want: policy, policyName: p, do: createSPC(tenantNS, "sc-evil-secretproviderclass", true)},
	}
}

// checkPolicies runs every action as its identity and checks which layer,
// if any, stopped it.
func checkPolicies(ctx context.Context, t *testing.T, k *kubetest.Clients) {
	fixtures(ctx, t, k)
	workloadFixtures(ctx, t, k.Clientset)
	job, agent := serviceAccount(t, k, "sc-job"), serviceAccount(t, k, "sc-agent")
	tenant := impersonate(t, k, "alice", "team-a-devs", "system:authenticated")
	waitForPolicies(ctx, t, k, job, agent, tenant)
	warnTypeChecking(ctx, t, k)

	// The agent runs first: it launches the Job that sc-job then deletes.
	for _, set := range []struct {
		id      identity
		actions []action
		min     int
	}{
		{agent, agentActions(k.Clientset), 20},
		{job, append(jobActions(k.Clientset), workloadActions()...), 30},
		{tenant, tenantActions(k.Clientset), 0},
	} {
		forbidden := 0
		for _, a := range set.actions {
			if a.want != allowed {
				forbidden++
			}
			t.Run(set.id.name+"/"+a.name, func(t *testing.T) {
				checkAction(ctx, t, set.id, a)
			})
		}
		assert.GreaterOrEqual(t, forbidden, set.min, "forbidden actions tried as %s", set.id.name)
	}
}

func checkAction(ctx context.Context, t *testing.T, id identity, a action) {
	err := a.do(ctx, id)
	switch a.want {
	case allowed:
		assert.NoError(t, err)
	case rbac:
		require.Error(t, err, "RBAC must deny this")
		assert.True(t, apierrors.IsForbidden(err), "%v", err)
		assert.NotContains(t, err.Error(), "ValidatingAdmissionPolicy", "RBAC, not a policy, denies this")
	case policy:
		require.Error(t, err, "%s must deny this", a.policyName)
		assert.True(t, apierrors.IsForbidden(err) || apierrors.IsInvalid(err), "%v", err)
		assert.Contains(t, err.Error(), "ValidatingAdmissionPolicy '"+a.policyName+"'", "denied by the policy, not by RBAC or validation")
	}
}

// waitForPolicies waits until the API server enforces each policy (its
// admission plugin loads policies and bindings through an informer), using
// dry-run requests that each policy, and only it, must deny.
func waitForPolicies(ctx context.Context, t *testing.T, k *kubetest.Clients, job, agent, tenant identity) {
	t.Helper()
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	probes := map[string]func() error{
		"sc-extension-job": func() error {
			_, err := job.cs.CoreV1().Secrets(tenantNS).Create(ctx, secret(tenantNS, "foo", map[string]string{managedBy: ours}, corev1.SecretTypeOpaque), dry)
			return err
		},
		"sc-extension-agent": func() error {
			_, err := agent.cs.CoreV1().Secrets(ns).Create(ctx, secret(ns, "foo", map[string]string{managedBy: ours}, corev1.SecretTypeOpaque), dry)
			return err
		},
		"sc-extension-agent-jobs": func() error {
			_, err := agent.cs.BatchV1().Jobs(ns).Create(ctx, jobWith(func(j *batchv1.Job) { j.Spec.Template.Spec.ServiceAccountName = "default" }), dry)
			return err
		},
		workloadPolicy: func() error {
			_, err := job.cs.AppsV1().Deployments("kube-system").Patch(ctx, systemApp, types.MergePatchType, []byte(`{}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		},
		daemonPolicy: func() error {
			_, err := job.cs.AppsV1().DaemonSets(tenantNS).Patch(ctx, tenantDaemon, types.StrategicMergePatchType,
				[]byte(`{"spec":{"template":{"spec":{"hostNetwork":true}}}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		},
		cronPolicy: func() error {
			_, err := job.cs.BatchV1().CronJobs(tenantNS).Patch(ctx, tenantCron, types.StrategicMergePatchType,
				[]byte(`{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"hostNetwork":true}}}}}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		},
		"sc-extension-owner-label": func() error {
			_, err := tenant.cs.CoreV1().Secrets(tenantNS).Create(ctx, secret(tenantNS, "x", map[string]string{managedBy: ours}, corev1.SecretTypeOpaque), dry)
			return err
		},
	}
	for name, probe := range probes {
		var last error
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			last = probe()
			return last != nil && strings.Contains(last.Error(), "ValidatingAdmissionPolicy '"+name+"'"), nil
		})
		require.NoError(t, err, "policy %s never enforced; last answer: %v", name, last)
	}
}

// warnTypeChecking fails on a type-checking warning the API server wrote
// into a policy's status: an expression that refers to a field the matched
// kinds do not have is a policy that can never work as written.
func warnTypeChecking(ctx context.Context, t *testing.T, k *kubetest.Clients) {
	t.Helper()
	for _, name := range []string{"sc-extension-job", "sc-extension-agent", "sc-extension-agent-jobs", "sc-extension-owner-label", workloadPolicy, daemonPolicy, cronPolicy} {
		var p *admissionregistrationv1.ValidatingAdmissionPolicy
		require.NoError(t, wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			var err error
			p, err = k.Clientset.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
			return err == nil && p.Status.ObservedGeneration == p.Generation, nil
		}), "status of %s", name)
		if p.Status.TypeChecking != nil {
			assert.Empty(t, p.Status.TypeChecking.ExpressionWarnings, "type checking of %s", name)
		}
	}
}
