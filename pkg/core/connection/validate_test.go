package connection

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
)

const credValue = "cred-VALUE-validate-7d1f"

func secretSpec() (Spec, Credentials) {
	return Spec{
			Name:          "blob_Conn",
			Scope:         "team-a",
			TargetService: TargetService{Type: catalog.TargetStorageBlob, ID: "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct/blobServices/default"},
			AuthInfo:      AuthInfo{AuthType: catalog.AuthSecret},
			ClientType:    catalog.ClientPython,
			Configurations: []Configuration{
				{Name: "AZURE_STORAGEBLOB_CONNECTIONSTRING", Credential: true},
			},
		},
		Credentials{"AZURE_STORAGEBLOB_CONNECTIONSTRING": credValue}
}

func identitySpec() Spec {
	return Spec{
		Name:          "blobwi",
		Scope:         "default",
		TargetService: TargetService{Type: catalog.TargetStorageBlob, ID: "/subscriptions/x/id"},
		AuthInfo:      AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: "00000000-0000-4000-8000-000000000001"},
		Configurations: []Configuration{
			{Name: "AZURE_STORAGEBLOB_RESOURCEENDPOINT", Value: "https://acct.blob.core.windows.net/"},
			{Name: "AZURE_STORAGEBLOB_CLIENTID", Value: "00000000-0000-4000-8000-000000000001"},
		},
	}
}

func TestValidateAcceptsCatalogCombinations(t *testing.T) {
	s, c := secretSpec()
	require.NoError(t, Validate(s, c))
	require.NoError(t, Validate(identitySpec(), nil))
}

// fieldsOf returns the fields named by a validation error, in order.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	require.ErrorIs(t, err, ErrInvalid)
	var v ValidationError
	require.True(t, errors.As(err, &v))
	out := make([]string, len(v))
	for i, e := range v {
		out[i] = e.Field
	}
	return out
}

func TestValidateNamesFieldAndReason(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Spec, Credentials)
		field  string
		reason string
	}{
		{"empty name", func(s *Spec, _ Credentials) { s.Name = "" }, "name", "required"},
		{"name with dash", func(s *Spec, _ Credentials) { s.Name = "a-b" }, "name", "letters, digits"},
		{"long name", func(s *Spec, _ Credentials) { s.Name = strings.Repeat("a", MaxNameLength+1) }, "name", "at most"},
		{"namespace", func(s *Spec, _ Credentials) { s.Scope = "Team_A" }, "scope", "namespace"},
		{"unknown target", func(s *Spec, _ Credentials) { s.TargetService.Type = "mongo" }, "targetService.type", "storage-blob"},
		{"no target id", func(s *Spec, _ Credentials) { s.TargetService.ID = " " }, "targetService.id", "required"},
		{"unsupported auth", func(s *Spec, _ Credentials) { s.TargetService.Type = catalog.TargetKeyVault }, "authInfo.authType", "supported"},
		{"missing credential value", func(_ *Spec, c Credentials) { delete(c, "AZURE_STORAGEBLOB_CONNECTIONSTRING") }, "credentials.AZURE_STORAGEBLOB_CONNECTIONSTRING", "required"},
		{"credential in the clear", func(s *Spec, _ Credentials) { s.Configurations[0].Value = credValue }, "configurations[0].value", "sealed"},
		{"credential flag wrong", func(s *Spec, _ Credentials) { s.Configurations[0].Credential = false }, "configurations[0].credential", "true"},
		{"missing key", func(s *Spec, _ Credentials) { s.Configurations = nil }, "configurations", "AZURE_STORAGEBLOB_CONNECTIONSTRING is required"},
		{"extra credential", func(_ *Spec, c Credentials) { c["AZURE_OTHER_KEY"] = credValue }, "credentials.AZURE_OTHER_KEY", "no matching"},
		{"duplicate key", func(s *Spec, _ Credentials) { s.Configurations = append(s.Configurations, s.Configurations[0]) }, "configurations[1].name", "more than once"},
		{"bad key name", func(s *Spec, _ Credentials) { s.Configurations = append(s.Configurations, Configuration{Name: "A B"}) }, "configurations[1].name", "letters"},
		{"customized unknown", func(s *Spec, _ Credentials) { s.CustomizedKeys = map[string]string{"NOPE": "X"} }, "customizedKeys.NOPE", "not one of"},
		{"customized invalid", func(s *Spec, _ Credentials) {
			s.CustomizedKeys = map[string]string{"AZURE_STORAGEBLOB_CONNECTIONSTRING": "a b"}
		}, "customizedKeys.AZURE_STORAGEBLOB_CONNECTIONSTRING", "new name"},
		{"reserved label", func(s *Spec, _ Credentials) { s.Labels = map[string]string{"app.kubernetes.io/managed-by": "me"} }, "labels.app.kubernetes.io/managed-by", "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := secretSpec()
			tt.mutate(&s, c)
			err := Validate(s, c)
			require.Error(t, err)
			assert.Contains(t, fieldsOf(t, err), tt.field, err.Error())
			assert.Contains(t, err.Error(), tt.reason)
			assert.NotContains(t, err.Error(), credValue, "errors never quote a credential")
		})
	}
}

func TestValidateIdentityNeedsGUIDs(t *testing.T) {
	s := identitySpec()
	s.AuthInfo.ClientID = ""
	assert.Contains(t, fieldsOf(t, Validate(s, nil)), "authInfo.clientId")

	s = identitySpec()
	s.AuthInfo.TenantID = "not-a-guid"
	assert.Contains(t, fieldsOf(t, Validate(s, nil)), "authInfo.tenantId")

	s = identitySpec()
	s.AuthInfo.AuthType = catalog.AuthServicePrincipal
	assert.Contains(t, fieldsOf(t, Validate(s, nil)), "authInfo.tenantId", "a service principal needs its tenant")
}

func TestValidateCustomizedKeysMustNotCollide(t *testing.T) {
	s := identitySpec()
	s.CustomizedKeys = map[string]string{"AZURE_STORAGEBLOB_CLIENTID": "AZURE_STORAGEBLOB_RESOURCEENDPOINT"}
	assert.Contains(t, fieldsOf(t, Validate(s, nil)), "customizedKeys.AZURE_STORAGEBLOB_CLIENTID")
}

func TestValidateReportsEveryProblemInStableOrder(t *testing.T) {
	s, c := secretSpec()
	s.Name, s.Scope = "", "UPPER"
	s.Labels = map[string]string{"servicelinker.sc-extension.io/z": "", "servicelinker.sc-extension.io/a": ""}
	err := Validate(s, c)
	assert.Equal(t, []string{"name", "scope", "labels.servicelinker.sc-extension.io/a", "labels.servicelinker.sc-extension.io/z"}, fieldsOf(t, err))
	assert.Equal(t, err.Error(), Validate(s, c).Error())
}

func TestRenderedKey(t *testing.T) {
	s := identitySpec()
	s.CustomizedKeys = map[string]string{"AZURE_STORAGEBLOB_CLIENTID": "MY_CLIENT"}
	assert.Equal(t, "MY_CLIENT", s.RenderedKey("AZURE_STORAGEBLOB_CLIENTID"))
	assert.Equal(t, "AZURE_STORAGEBLOB_RESOURCEENDPOINT", s.RenderedKey("AZURE_STORAGEBLOB_RESOURCEENDPOINT"))
}

func FuzzValidate(f *testing.F) {
	f.Add("blob1", "default", "storage-blob", "secret", "python", "AZURE_STORAGEBLOB_CONNECTIONSTRING", "v")
	f.Add("x.Y_z", "ns", "keyvault", "workloadIdentity", "", "AZURE_KEYVAULT_RESOURCEENDPOINT", "")
	f.Fuzz(func(t *testing.T, name, scope, target, auth, client, key, value string) {
		s := Spec{Name: name, Scope: scope, TargetService: TargetService{Type: catalog.TargetType(target), ID: "id"},
			AuthInfo: AuthInfo{AuthType: catalog.AuthType(auth)}, ClientType: catalog.ClientType(client),
			Configurations: []Configuration{{Name: key, Credential: catalog.IsCredential(key)}}}
		err := Validate(s, Credentials{key: value})
		if err == nil {
			require.Regexp(t, dns1123Label, s.ID())
			return
		}
		require.ErrorIs(t, err, ErrInvalid)
		// A credential leaks when the error's text depends on the value's
		// content. Comparing with a same-length value of other bytes tells a
		// leak from a value that merely equals a key or field name the error
		// is right to quote.
		other := Validate(s, Credentials{key: otherValue(value)})
		require.Error(t, other)
		require.Equal(t, err.Error(), other.Error(), "the error depends on the credential value")
	})
}

// otherValue returns a value of the same length as v sharing none of its bytes,
// so only the content differs.
func otherValue(v string) string {
	b := []byte(v)
	for i := range b {
		b[i] = 'a' + (b[i]+1)%26
		if b[i] == v[i] {
			b[i]++
		}
	}
	return string(b)
}

func TestValidateErrorDoesNotDependOnCredentialValue(t *testing.T) {
	// The crasher CI once found: a credential whose value equals its key
	// name. The key name in the error is no leak.
	key := "AZURE_STORAGEBLOB_CONNECTIONSTRING"
	s := Spec{Name: "blob1", Scope: "default", TargetService: TargetService{Type: "storage-blob", ID: "id"},
		AuthInfo: AuthInfo{AuthType: "secret"}, Configurations: []Configuration{{Name: key, Credential: false}}}
	err := Validate(s, Credentials{key: key})
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), key)
	assert.Equal(t, err.Error(), Validate(s, Credentials{key: otherValue(key)}).Error())
}

func TestValidateBinding(t *testing.T) {
	app := Workload{Kind: WorkloadDeployment, Name: "app"}
	many := make([]Workload, MaxBoundWorkloads+1)
	for i := range many {
		many[i] = Workload{Kind: WorkloadDeployment, Name: "app-" + strings.Repeat("x", i+1)}
	}
	tests := []struct {
		name    string
		binding Binding
		field   string // "" = valid
		reason  string
	}{
		{"one workload, default mode", Binding{Workloads: []Workload{app}}, "", ""},
		{"every kind, both modes", Binding{Mode: BindingVolume, NoRestart: true, Workloads: []Workload{
			{Kind: WorkloadDeployment, Name: "a"}, {Kind: WorkloadStatefulSet, Name: "a"},
			{Kind: WorkloadDaemonSet, Name: "a.b"}, {Kind: WorkloadCronJob, Name: "a", Containers: []string{"web", "side-car"}},
		}}, "", ""},
		{"env mode", Binding{Mode: BindingEnv, Workloads: []Workload{app}}, "", ""},
		{"sixteen workloads", Binding{Workloads: many[:MaxBoundWorkloads]}, "", ""},
		{"longest name", Binding{Workloads: []Workload{{Kind: WorkloadDeployment, Name: strings.Repeat("a", 253)}}}, "", ""},
		{"no workload", Binding{}, "binding.workloads", "at least one"},
		{"too many", Binding{Workloads: many}, "binding.workloads", "at most 16"},
		{"unknown kind", Binding{Workloads: []Workload{app, {Kind: "Pod", Name: "x"}}}, "binding.workloads[1].kind", "Deployment, StatefulSet, DaemonSet, CronJob"},
		{"kind in lower case", Binding{Workloads: []Workload{{Kind: "deployment", Name: "x"}}}, "binding.workloads[0].kind", "must be one of"},
		{"no name", Binding{Workloads: []Workload{{Kind: WorkloadDeployment}}}, "binding.workloads[0].name", "required"},
		{"upper-case name", Binding{Workloads: []Workload{{Kind: WorkloadDeployment, Name: "App"}}}, "binding.workloads[0].name", "lowercase"},
		{"name with slash", Binding{Workloads: []Workload{{Kind: WorkloadDeployment, Name: "a/b"}}}, "binding.workloads[0].name", "Kubernetes object name"},
		{"name too long", Binding{Workloads: []Workload{{Kind: WorkloadDeployment, Name: strings.Repeat("a", 254)}}}, "binding.workloads[0].name", "at most 253"},
		{"duplicate workload", Binding{Workloads: []Workload{app, {Kind: WorkloadStatefulSet, Name: "app"}, app}}, "binding.workloads[2]", "already bound by binding.workloads[0]"},
		{"bad container", Binding{Workloads: []Workload{{Kind: WorkloadDeployment, Name: "a", Containers: []string{"web", "Web"}}}}, "binding.workloads[0].containers[1]", "container name"},
		{"dotted container", Binding{Workloads: []Workload{{Kind: WorkloadDeployment, Name: "a", Containers: []string{"a.b"}}}}, "binding.workloads[0].containers[0]", "container name"},
		{"long container", Binding{Workloads: []Workload{{Kind: WorkloadDeployment, Name: "a", Containers: []string{strings.Repeat("c", 64)}}}}, "binding.workloads[0].containers[0]", "at most 63"},
		{"duplicate container", Binding{Workloads: []Workload{{Kind: WorkloadDeployment, Name: "a", Containers: []string{"web", "web"}}}}, "binding.workloads[0].containers[1]", "more than once"},
		{"unknown mode", Binding{Mode: "envFrom", Workloads: []Workload{app}}, "binding.mode", "env or volume"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := secretSpec()
			s.Binding = &tt.binding
			err := Validate(s, c)
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			assert.Equal(t, []string{tt.field}, fieldsOf(t, err), err.Error())
			assert.Contains(t, err.Error(), tt.reason)
			assert.NotContains(t, err.Error(), credValue, "errors never quote a credential")
		})
	}
}

func TestValidateBindingRefusedForKeyvaultCSI(t *testing.T) {
	s := Spec{Name: "kv", Scope: "default", TargetService: TargetService{Type: catalog.TargetKeyVault, ID: "/subscriptions/x/id"},
		AuthInfo:    AuthInfo{AuthType: catalog.AuthKeyvaultCSI},
		SecretStore: &SecretStore{KeyVaultName: "vault", TenantID: "00000000-0000-4000-8000-000000000002"}}
	require.NoError(t, Validate(s, nil), "the spec is valid without a binding")

	// Even a binding valid in every other respect: there is no Secret to bind.
	s.Binding = &Binding{Workloads: []Workload{{Kind: WorkloadDeployment, Name: "app"}}}
	err := Validate(s, nil)
	assert.Equal(t, []string{"binding"}, fieldsOf(t, err))
	assert.Contains(t, err.Error(), "keyvaultCsi")
	assert.Contains(t, err.Error(), "no Secret to bind")
}

func TestValidateBindingForWorkloadIdentity(t *testing.T) {
	s := identitySpec()
	s.Binding = &Binding{Mode: BindingVolume, Workloads: []Workload{{Kind: WorkloadCronJob, Name: "nightly"}}}
	require.NoError(t, Validate(s, nil))
}

func TestValidateBindingReportsEveryProblemInOrder(t *testing.T) {
	s, c := secretSpec()
	s.Binding = &Binding{Mode: "x", Workloads: []Workload{
		{Kind: "Job", Name: "A", Containers: []string{"_"}},
		{Kind: WorkloadDaemonSet, Name: "ok"},
		{Kind: WorkloadDaemonSet, Name: "ok"},
	}}
	err := Validate(s, c)
	assert.Equal(t, []string{
		"binding.mode",
		"binding.workloads[0].kind", "binding.workloads[0].name", "binding.workloads[0].containers[0]",
		"binding.workloads[2]",
	}, fieldsOf(t, err))
	assert.Equal(t, err.Error(), Validate(s, c).Error())
}

func FuzzValidateBinding(f *testing.F) {
	f.Add("Deployment", "app", "web", "env")
	f.Add("cronjob", "a.b", "", "volume")
	f.Add("DaemonSet", "-x", "Web", "")
	f.Fuzz(func(t *testing.T, kind, name, container, mode string) {
		s, c := secretSpec()
		w := Workload{Kind: WorkloadKind(kind), Name: name}
		if container != "" {
			w.Containers = []string{container}
		}
		s.Binding = &Binding{Mode: BindingMode(mode), Workloads: []Workload{w}}
		err := Validate(s, c)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalid)
			assert.NotContains(t, err.Error(), credValue)
			return
		}
		// What passes is what the API server accepts as names.
		require.True(t, w.Kind.Known())
		require.LessOrEqual(t, len(name), 253)
		for _, label := range strings.Split(name, ".") {
			require.Regexp(t, dns1123Label, label)
		}
		if container != "" {
			require.Regexp(t, dns1123Label, container)
			require.LessOrEqual(t, len(container), 63)
		}
		require.Contains(t, []BindingMode{"", BindingEnv, BindingVolume}, s.Binding.Mode)
	})
}
