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
