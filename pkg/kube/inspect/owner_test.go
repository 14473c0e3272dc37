package inspect

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/apply"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

const (
	ourUID    = "11111111-aaaa-4000-8000-000000000001"
	tenantUID = "22222222-bbbb-4000-8000-000000000002"
)

func TestNotOurs(t *testing.T) {
	ref := connection.ResourceRef{Kind: render.KindSecret, Namespace: ns, Name: "sc-db1-secret"}
	other := connection.ResourceRef{Kind: render.KindServiceAccount, Namespace: ns, Name: "sc-account-x"}
	recorded := connection.Connection{Status: connection.Status{Owned: []connection.OwnedObject{{ResourceRef: ref, UID: ourUID}}}}
	obj := func(uid string) metav1.Object { return &metav1.ObjectMeta{UID: types.UID(uid)} }

	notOurs, why := NotOurs(recorded, ref, obj(ourUID))
	assert.False(t, notOurs, "the recorded UID: ours")
	assert.Empty(t, why)

	notOurs, why = NotOurs(recorded, ref, obj(tenantUID))
	assert.True(t, notOurs, "same name, another UID: a replacement")
	assert.Equal(t, "not the object sc-job created: its UID is "+tenantUID+", the record holds "+ourUID, why)

	notOurs, _ = NotOurs(recorded, ref, obj(""))
	assert.True(t, notOurs, "an object without a UID is not the one recorded")

	notOurs, _ = NotOurs(recorded, other, obj(tenantUID))
	assert.False(t, notOurs, "no UID recorded for this object: the UID proves nothing")
	notOurs, _ = NotOurs(connection.Connection{}, ref, obj(tenantUID))
	assert.False(t, notOurs, "a legacy record with no UIDs: labels decide, as before")
}

// owning records uid for each of objs' refs, as sc-job would have.
func owning(c connection.Connection, objs render.Objects, uid string) connection.Connection {
	for _, ref := range objs.Refs() {
		c.Status.Own(ref, uid)
	}
	return c
}

// A tenant deleted our Secret and created a same-named copy with the same
// labels, annotations and data: only the UID tells it apart.
func TestValidateReplacedSecretIsNotOurs(t *testing.T) {
	c, creds, objs := rendered(t)
	c = owning(c, objs, ourUID)
	sa := objs.ServiceAccount.DeepCopy()
	sa.UID = ourUID
	ours := objs.Secret.DeepCopy()
	ours.UID = ourUID
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}

	r := Validate(context.Background(), fake.NewClientset(nsObj, ours, sa), nil, c, creds)
	assert.True(t, r.Valid, "the recorded objects: %+v", r.Checks)

	copied := objs.Secret.DeepCopy()
	copied.UID = tenantUID
	r = Validate(context.Background(), fake.NewClientset(nsObj, copied, sa), nil, c, creds)
	assert.False(t, r.Valid)
	assert.Equal(t, map[string]string{
		CheckNamespace: Success, CheckSecret: Failure, CheckKeys: Success, CheckDataHash: Success,
		CheckSpec: Success, CheckServiceAccount: Success, CheckPhase: Success,
	}, results(r))
	assert.Equal(t, "Secret team-a/sc-db1-secret exists but is not the object sc-job created: its UID is "+tenantUID+
		", the record holds "+ourUID+" (deleted and replaced outside sc-extension; sc-job will not overwrite it)", description(r, CheckSecret))
	noCredential(t, r)
}

func TestValidateReplacedServiceAccountIsNotOurs(t *testing.T) {
	c, creds, objs := rendered(t)
	c = owning(c, objs, ourUID)
	sec := objs.Secret.DeepCopy()
	sec.UID = ourUID
	copied := objs.ServiceAccount.DeepCopy()
	copied.UID = tenantUID
	client := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, sec, copied)

	r := Validate(context.Background(), client, nil, c, creds)
	assert.False(t, r.Valid)
	assert.Equal(t, Success, results(r)[CheckSecret])
	assert.Equal(t, "ServiceAccount team-a/"+copied.Name+": not the object sc-job created: its UID is "+tenantUID+
		", the record holds "+ourUID, description(r, CheckServiceAccount))
}

func TestValidateReplacedSecretProviderClassIsNotOurs(t *testing.T) {
	c := connection.Connection{Generation: 1, Status: connection.Status{Phase: connection.PhaseSucceeded}, Spec: connection.Spec{
		Name: "kvcsi", Scope: ns,
		TargetService: connection.TargetService{Type: catalog.TargetKeyVault, ID: "/x"},
		AuthInfo:      connection.AuthInfo{AuthType: catalog.AuthKeyvaultCSI, ClientID: clientID},
		SecretStore:   &connection.SecretStore{KeyVaultName: "kv", Objects: []string{"a"}},
	}}
	objs, err := render.Render(c, nil)
	require.NoError(t, err)
	c = owning(c, objs, ourUID)
	crd := objs.SecretProviderClass.DeepCopy()
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	crd.SetNamespace("")
	crd.SetName(render.SPCCRDName)
	copied := objs.SecretProviderClass.DeepCopy()
	copied.SetUID(tenantUID)
	kinds := map[schema.GroupVersionResource]string{apply.CRDResource: "CustomResourceDefinitionList", apply.SPCResource: "SecretProviderClassList"}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds, crd, copied)

	r := Validate(context.Background(), fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}), dyn, c, nil)
	assert.False(t, r.Valid)
	assert.Equal(t, "SecretProviderClass team-a/"+copied.GetName()+" exists but is not the object sc-job created: its UID is "+tenantUID+
		", the record holds "+ourUID+" (deleted and replaced outside sc-extension; sc-job will not overwrite it)", description(r, CheckSPC))
}

// description is the named check's description.
func description(r protocol.ValidateResult, name string) string {
	for _, c := range r.Checks {
		if c.Name == name {
			return c.Description
		}
	}
	return ""
}
