package inspect

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

const (
	ns       = "team-a"
	credVal  = "cred-VALUE-inspect-91c3"
	clientID = "00000000-0000-4000-8000-0000000000ab"
)

func conn() (connection.Connection, connection.Credentials) {
	return connection.Connection{Generation: 2, Status: connection.Status{Phase: connection.PhaseSucceeded}, Spec: connection.Spec{
			Name: "db1", Scope: ns,
			TargetService: connection.TargetService{Type: catalog.TargetRedis, ID: "/x"},
			AuthInfo:      connection.AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: clientID},
			Configurations: []connection.Configuration{
				{Name: "AZURE_REDIS_HOST", Value: "h.redis.cache.windows.net"},
				{Name: "AZURE_REDIS_PASSWORD", Credential: true},
			},
		}},
		connection.Credentials{"AZURE_REDIS_PASSWORD": credVal}
}

func rendered(t *testing.T) (connection.Connection, connection.Credentials, render.Objects) {
	c, creds := conn()
	objs, err := render.Render(c, creds)
	require.NoError(t, err)
	return c, creds, objs
}

func results(r protocol.ValidateResult) map[string]string {
	out := map[string]string{}
	for _, c := range r.Checks {
		out[c.Name] = c.Result
	}
	return out
}

func noCredential(t *testing.T, r protocol.ValidateResult) {
	t.Helper()
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.NotContains(t, string(b), credVal)
}

func TestValidateAllGood(t *testing.T) {
	c, creds, objs := rendered(t)
	client := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, objs.Secret, objs.ServiceAccount)
	r := Validate(context.Background(), client, nil, c, creds)
	assert.True(t, r.Valid, "%+v", r.Checks)
	assert.Equal(t, map[string]string{
		CheckNamespace: Success, CheckSecret: Success, CheckKeys: Success, CheckDataHash: Success,
		CheckSpec: Success, CheckServiceAccount: Success, CheckPhase: Success,
	}, results(r))
	noCredential(t, r)
}

func TestValidateReportsEachProblem(t *testing.T) {
	c, creds, objs := rendered(t)
	sec := objs.Secret.DeepCopy()
	sec.Data["AZURE_REDIS_PASSWORD"] = []byte("cred-VALUE-changed-by-hand")
	delete(sec.Data, "AZURE_REDIS_HOST")
	c.Status = connection.Status{Phase: connection.PhaseFailed, Reason: "SecretIsOwned", Message: "x"}
	client := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, sec)
	r := Validate(context.Background(), client, nil, c, creds)
	assert.False(t, r.Valid)
	assert.Equal(t, map[string]string{
		CheckNamespace: Success, CheckSecret: Success, CheckKeys: Failure, CheckDataHash: Failure,
		CheckSpec: Failure, CheckServiceAccount: Failure, CheckPhase: Failure,
	}, results(r))
	for _, ch := range r.Checks {
		if ch.Name == CheckSpec {
			assert.Equal(t, "values differ from the connection's spec: AZURE_REDIS_PASSWORD (credential)", ch.Description)
		}
	}
	noCredential(t, r)
	b, _ := json.Marshal(r)
	assert.NotContains(t, string(b), "cred-VALUE-changed-by-hand")
}

func TestValidateMissingNamespaceAndSecret(t *testing.T) {
	c, creds := conn()
	r := Validate(context.Background(), fake.NewClientset(), nil, c, creds)
	assert.False(t, r.Valid)
	assert.Equal(t, Failure, results(r)[CheckNamespace])
	assert.Equal(t, Failure, results(r)[CheckSecret])
}

func TestValidateSecretProviderClass(t *testing.T) {
	c := connection.Connection{Generation: 1, Status: connection.Status{Phase: connection.PhaseSucceeded}, Spec: connection.Spec{
		Name: "kvcsi", Scope: ns,
		TargetService: connection.TargetService{Type: catalog.TargetKeyVault, ID: "/x"},
		AuthInfo:      connection.AuthInfo{AuthType: catalog.AuthKeyvaultCSI, ClientID: clientID},
		SecretStore:   &connection.SecretStore{KeyVaultName: "kv", Objects: []string{"a"}},
	}}
	objs, err := render.Render(c, nil)
	require.NoError(t, err)
	kinds := map[schema.GroupVersionResource]string{apply.CRDResource: "CustomResourceDefinitionList", apply.SPCResource: "SecretProviderClassList"}
	client := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})

	r := Validate(context.Background(), client, dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds), c, nil)
	assert.Equal(t, Failure, results(r)[CheckSPC])
	assert.Contains(t, r.Checks[1].Description, "the Secret Store CSI driver is not installed")

	crd := objs.SecretProviderClass.DeepCopy()
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	crd.SetNamespace("")
	crd.SetName(render.SPCCRDName)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds, crd, objs.SecretProviderClass)
	r = Validate(context.Background(), client, dyn, c, nil)
	assert.True(t, r.Valid, "%+v", r.Checks)
}

func TestDriftOf(t *testing.T) {
	_, _, objs := rendered(t)
	sec := objs.Secret
	drifted, _ := DriftOf(sec, sec.Data)
	assert.False(t, drifted)

	edited := sec.DeepCopy()
	edited.Data["AZURE_REDIS_HOST"] = []byte("elsewhere")
	drifted, why := DriftOf(edited, edited.Data)
	assert.True(t, drifted)
	assert.Equal(t, "data changed since sc-job rendered it (hash mismatch)", why)

	unlabelled := sec.DeepCopy()
	delete(unlabelled.Labels, render.LabelManagedBy)
	drifted, why = DriftOf(unlabelled, unlabelled.Data)
	assert.True(t, drifted)
	assert.Contains(t, why, "was removed")

	sa := objs.ServiceAccount.DeepCopy()
	drifted, _ = DriftOf(sa, nil)
	assert.False(t, drifted, "a ServiceAccount is judged by its annotations, not by data")
	sa.Annotations[render.AnnotationWIClientID] = "11111111-0000-4000-8000-000000000000"
	drifted, why = DriftOf(sa, nil)
	assert.True(t, drifted)
	assert.Contains(t, why, "workload identity annotations")

	noHash := sec.DeepCopy()
	delete(noHash.Annotations, render.AnnotationDataHash)
	drifted, _ = DriftOf(noHash, noHash.Data)
	assert.True(t, drifted)
}
