package catalog

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestIsCredential(t *testing.T) {
	for name, want := range map[string]bool{
		"AZURE_STORAGEBLOB_CONNECTIONSTRING":          true,
		"AZURE_OPENAI_KEY":                            true,
		"AZURE_REDIS_PASSWORD":                        true,
		"AZURE_KEYVAULT_CLIENTSECRET":                 true,
		"azure_sql_password":                          true, // case does not un-hide a secret
		"PASSWORD":                                    true,
		"spring.cloud.azure.storage.blob.account-key": true,
		"spring.cloud.azure.keyvault.secret.credential.client-secret": true,
		"spring.datasource.password":                                  true,
		"spring.cloud.azure.servicebus.connection-string":             true,

		"AZURE_STORAGEBLOB_RESOURCEENDPOINT":           false,
		"AZURE_KEYVAULT_CLIENTID":                      false,
		"AZURE_COSMOS_LISTKEYURL":                      false, // a URL to fetch keys, not a key
		"AZURE_SQL_USER":                               false,
		"AZURE_MONKEY":                                 false, // suffix must follow a separator
		"AZURE_KEYVAULT_TENANTID":                      false,
		"spring.cloud.azure.storage.blob.account-name": false,
		"KEYVAULT":                                     false,
		"":                                             false,
	} {
		assert.Equal(t, want, IsCredential(name), name)
	}
}
