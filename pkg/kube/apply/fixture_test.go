package apply

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeuid"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

const (
	ns       = "team-a"
	clientID = "00000000-0000-4000-8000-0000000000ab"
)

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func credValue(t *testing.T) string { return fmt.Sprintf("cred-VALUE-%s", t.Name()) }

func secretConn(t *testing.T, name string) (connection.Connection, connection.Credentials) {
	return connection.Connection{Generation: 1, Spec: connection.Spec{
			Name: name, Scope: ns,
			TargetService:  connection.TargetService{Type: catalog.TargetRedis, ID: "/subscriptions/s/x"},
			AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
			Configurations: []connection.Configuration{{Name: "AZURE_REDIS_CONNECTIONSTRING", Credential: true}},
		}},
		connection.Credentials{"AZURE_REDIS_CONNECTIONSTRING": credValue(t)}
}

func wiConn(name string) connection.Connection {
	return connection.Connection{Generation: 1, Spec: connection.Spec{
		Name: name, Scope: ns,
		TargetService:  connection.TargetService{Type: catalog.TargetKeyVault, ID: "/subscriptions/s/kv"},
		AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: clientID},
		Configurations: []connection.Configuration{{Name: "AZURE_KEYVAULT_CLIENTID", Value: clientID}},
	}}
}

func csiConn(name string) connection.Connection {
	return connection.Connection{Generation: 1, Spec: connection.Spec{
		Name: name, Scope: ns,
		TargetService: connection.TargetService{Type: catalog.TargetKeyVault, ID: "/subscriptions/s/kv"},
		AuthInfo:      connection.AuthInfo{AuthType: catalog.AuthKeyvaultCSI, ClientID: clientID},
		SecretStore:   &connection.SecretStore{KeyVaultName: "kv", Objects: []string{"a"}},
	}}
}

func mustRender(t *testing.T, c connection.Connection, creds connection.Credentials) render.Objects {
	t.Helper()
	objs, err := render.Render(c, creds)
	require.NoError(t, err)
	return objs
}

func crd() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("apiextensions.k8s.io/v1")
	u.SetKind("CustomResourceDefinition")
	u.SetName(render.SPCCRDName)
	return u
}

func newDynamic(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return fakeuid.Assign(dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		CRDResource: "CustomResourceDefinitionList",
		SPCResource: "SecretProviderClassList",
	}, objs...))
}

// counts is res without its per-object list, for tests about the counts.
func counts(res Result) Result {
	res.Objects = nil
	return res
}

// fieldManagers returns the field manager of every write, to assert none is missing.
func fieldManagers(acts []k8stesting.Action) []string {
	var out []string
	for _, a := range acts {
		switch x := a.(type) {
		case k8stesting.CreateActionImpl:
			out = append(out, x.GetCreateOptions().FieldManager)
		case k8stesting.UpdateActionImpl:
			out = append(out, x.GetUpdateOptions().FieldManager)
		}
	}
	return out
}

// failOnce makes the first matching call fail with err.
func failOnce(err error) k8stesting.ReactionFunc {
	done := false
	return func(k8stesting.Action) (bool, runtime.Object, error) {
		if done {
			return false, nil, nil
		}
		done = true
		return true, nil, err
	}
}

func conflictErr(resource, name string) error {
	return apierrors.NewConflict(schema.GroupResource{Resource: resource}, name, fmt.Errorf("the object has been modified"))
}

// newClient is a fake clientset whose creates get a UID, as the API server's
// do: ownership rests on it.
func newClient(objs ...runtime.Object) *fake.Clientset {
	return fakeuid.Assign(fake.NewClientset(objs...))
}

// fresh is a connection whose record owns nothing yet.
func fresh(id string) Owner { return Owner{ID: id} }

// withUID gives obj the UID the API server would have, as a pre-existing object.
func withUID[T metav1.Object](obj T, uid string) T {
	obj.SetUID(types.UID(uid))
	return obj
}

// owning is a connection whose record holds the UIDs of objs (objects of
// kind, pre-existing in the fake).
func owning(id, kind string, objs ...metav1.Object) Owner {
	own := Owner{ID: id}
	for _, o := range objs {
		r := ref(kind, o.GetNamespace(), o.GetName())
		own.Owned = append(own.Owned, connection.OwnedObject{ResourceRef: r, UID: string(o.GetUID())})
		own.Rendered = append(own.Rendered, r)
	}
	return own
}
