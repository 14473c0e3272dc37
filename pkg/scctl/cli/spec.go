package cli

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// specFlags are create's and update's flags, before interpretation.
type specFlags struct {
	name, namespace, targetID, clientType      string
	secret, workloadIdentity, servicePrincipal []string
	keyvaultCSI, configs, customizedKeys       []string
	binding                                    bindingFlags
	changed                                    func(string) bool
}

func (f *specFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "connection", "", "connection name: letters, digits, '.' and '_' (required)")
	fs.StringVar(&f.namespace, "kube-namespace", "default", "namespace the Secret/ServiceAccount are rendered into")
	fs.StringVar(&f.targetID, "target-id", "", "Azure resource id of the target service (required for create)")
	fs.StringVar(&f.clientType, "client-type", string(catalog.ClientNone), "application client type (see list-support-types)")
	fs.StringArrayVar(&f.secret, "secret", nil,
		"secret auth: credential values as KEY=VALUE[,KEY=VALUE]; KEY is the full key or an alias such as "+
			"connection-string, password or key; VALUE @FILE reads a file")
	fs.StringArrayVar(&f.workloadIdentity, "workload-identity", nil, "workload identity auth: client-id=GUID[,tenant-id=GUID]")
	fs.StringArrayVar(&f.servicePrincipal, "service-principal", nil, "service principal auth: client-id=GUID,secret=VALUE,tenant-id=GUID")
	fs.StringArrayVar(&f.keyvaultCSI, "keyvault-csi", nil,
		"Key Vault through the Secret Store CSI driver: tenant-id=GUID,client-id=GUID[,objects=name1;name2]")
	fs.StringArrayVar(&f.configs, "config", nil, "set or add a non-credential configuration: KEY=VALUE[,KEY=VALUE]")
	fs.StringArrayVar(&f.customizedKeys, "customized-keys", nil, "rename rendered keys: ORIGINAL=NEW[,ORIGINAL=NEW]")
	f.binding.register(fs)
	f.changed = func(name string) bool { return fs.Changed(name) }
}

// build turns the flags into a validated spec and its credential values.
// base, for update, is the stored connection: what the flags leave out is
// kept from it (credential values excepted: they never leave the cluster).
func (f *specFlags) build(target string, base *connection.Spec) (connection.Spec, connection.Credentials, error) {
	t, err := catalog.ParseTarget(target)
	if err != nil {
		return connection.Spec{}, nil, usagef("<target>: %v", err)
	}
	if f.name == "" {
		return connection.Spec{}, nil, usagef("--connection is required")
	}
	spec := connection.Spec{
		Name: f.name, Scope: f.namespace,
		TargetService: connection.TargetService{Type: t, ID: f.targetID},
	}
	if base != nil {
		if base.TargetService.Type != t {
			return connection.Spec{}, nil, usagef("<target>: connection %q is a %s connection, not %s", f.name, base.TargetService.Type, t)
		}
		if !f.changed("kube-namespace") {
			spec.Scope = base.Scope
		}
		if !f.changed("target-id") {
			spec.TargetService.ID = base.TargetService.ID
		}
		spec.Labels, spec.Annotations = base.Labels, base.Annotations
	}
	if spec.TargetService.ID == "" {
		return connection.Spec{}, nil, usagef("--target-id is required")
	}

	sp, err := f.auth(base)
	if err != nil {
		return connection.Spec{}, nil, err
	}
	spec.AuthInfo = sp.info
	spec.SecretStore = sp.store

	spec.ClientType = catalog.ClientType(f.clientType)
	if base != nil && !f.changed("client-type") {
		spec.ClientType = base.ClientType
	}
	if spec.ClientType, err = catalog.ParseClient(string(spec.ClientType)); err != nil {
		return connection.Spec{}, nil, usagef("--client-type: %v", err)
	}
	keys, err := catalog.Keys(t, spec.AuthInfo.AuthType, spec.ClientType)
	if err != nil {
		return connection.Spec{}, nil, usagef("%v", err)
	}
	derived, err := catalog.Derive(t, spec.AuthInfo.AuthType, spec.ClientType, spec.TargetService.ID, spec.AuthInfo.ClientID)
	if err != nil {
		if errors.Is(err, catalog.ErrInvalidResourceID) {
			return connection.Spec{}, nil, usagef("--target-id: %v", err)
		}
		return connection.Spec{}, nil, usagef("%v", err)
	}

	creds, err := f.credentials(t, keys, sp.clientSecret)
	if err != nil {
		return connection.Spec{}, nil, err
	}
	overrides, err := parseKVs("--config", f.configs)
	if err != nil {
		return connection.Spec{}, nil, err
	}
	if spec.Configurations, err = configurations(keys, derived, overrides, sp.info.TenantID, base, f.changed("target-id")); err != nil {
		return connection.Spec{}, nil, err
	}
	if spec.CustomizedKeys, err = f.customized(base); err != nil {
		return connection.Spec{}, nil, err
	}
	if spec.Binding, err = f.bindingSpec(base); err != nil {
		return connection.Spec{}, nil, err
	}
	if err := connection.Validate(spec, creds); err != nil {
		return connection.Spec{}, nil, err
	}
	return spec, creds, nil
}

// authChoice is what the auth flags say.
type authChoice struct {
	info         connection.AuthInfo
	store        *connection.SecretStore
	clientSecret string // service principal secret, a credential value
}

func (f *specFlags) auth(base *connection.Spec) (authChoice, error) {
	var given []string
	for _, name := range []string{"workload-identity", "service-principal", "keyvault-csi"} {
		if f.changed(name) {
			given = append(given, "--"+name)
		}
	}
	switch {
	case len(given) > 1:
		return authChoice{}, usagef("%s are alternatives; give one auth type", strings.Join(given, " and "))
	case f.changed("workload-identity"):
		o, err := subOptions("--workload-identity", f.workloadIdentity, "client-id", "tenant-id")
		if err != nil {
			return authChoice{}, err
		}
		if o["client-id"] == "" {
			return authChoice{}, usagef("--workload-identity: client-id is required")
		}
		return authChoice{info: connection.AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: o["client-id"], TenantID: o["tenant-id"]}}, nil
	case f.changed("service-principal"):
		o, err := subOptions("--service-principal", f.servicePrincipal, "client-id", "secret", "tenant-id")
		if err != nil {
			return authChoice{}, err
		}
		for _, k := range []string{"client-id", "secret", "tenant-id"} {
			if o[k] == "" {
				return authChoice{}, usagef("--service-principal: %s is required", k)
			}
		}
		secret, err := readValue("--service-principal secret", o["secret"])
		if err != nil {
			return authChoice{}, err
		}
		return authChoice{
			info:         connection.AuthInfo{AuthType: catalog.AuthServicePrincipal, ClientID: o["client-id"], TenantID: o["tenant-id"]},
			clientSecret: secret,
		}, nil
	case f.changed("keyvault-csi"):
		o, err := subOptions("--keyvault-csi", f.keyvaultCSI, "tenant-id", "client-id", "objects")
		if err != nil {
			return authChoice{}, err
		}
		for _, k := range []string{"tenant-id", "client-id"} {
			if o[k] == "" {
				return authChoice{}, usagef("--keyvault-csi: %s is required", k)
			}
		}
		store := &connection.SecretStore{
			KeyVaultName:   vaultName(f.targetID),
			TenantID:       o["tenant-id"],
			UserAssignedID: o["client-id"],
		}
		for _, obj := range strings.Split(o["objects"], ";") {
			if obj = strings.TrimSpace(obj); obj != "" {
				store.Objects = append(store.Objects, obj)
			}
		}
		return authChoice{info: connection.AuthInfo{AuthType: catalog.AuthKeyvaultCSI, TenantID: o["tenant-id"]}, store: store}, nil
	case f.changed("secret"):
		return authChoice{info: connection.AuthInfo{AuthType: catalog.AuthSecret}}, nil
	case base != nil:
		if base.AuthInfo.AuthType == catalog.AuthServicePrincipal {
			return authChoice{}, usagef("--service-principal is required again: its secret is not kept outside the cluster")
		}
		return authChoice{info: base.AuthInfo, store: base.SecretStore}, nil
	}
	return authChoice{}, usagef("an auth type is required: one of --secret, --workload-identity, --service-principal, --keyvault-csi")
}

// vaultName is the vault's name from its resource id; Derive has already
// checked (or will report) that the id names a vault.
func vaultName(id string) string {
	parts := strings.Split(strings.TrimSuffix(id, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "vaults") {
			return parts[i+1]
		}
	}
	return ""
}

// credentials resolves --secret items to the combination's credential keys.
func (f *specFlags) credentials(t catalog.TargetType, keys []catalog.Key, clientSecret string) (connection.Credentials, error) {
	var credKeys []string
	for _, k := range keys {
		if k.Credential {
			credKeys = append(credKeys, k.Name)
		}
	}
	pairs, err := parseKVs("--secret", f.secret)
	if err != nil {
		return nil, err
	}
	creds := connection.Credentials{}
	for _, p := range pairs {
		name, err := resolveCredentialKey(t, credKeys, p.Key)
		if err != nil {
			return nil, err
		}
		if _, dup := creds[name]; dup {
			return nil, usagef("--secret: %s given more than once", name)
		}
		if creds[name], err = readValue("--secret "+p.Key, p.Value); err != nil {
			return nil, err
		}
	}
	if clientSecret != "" {
		for _, k := range credKeys {
			if aliasOf(t, k) == "CLIENTSECRET" {
				creds[k] = clientSecret
			}
		}
	}
	for _, k := range credKeys {
		if creds[k] == "" {
			return nil, usagef("--secret: %s is required (or %s=...)", k, friendly(aliasOf(t, k)))
		}
	}
	return creds, nil
}

// resolveCredentialKey accepts a full credential key name or an alias that
// names exactly one credential key by its suffix: connection-string,
// password, key, client-secret, account-key.
func resolveCredentialKey(t catalog.TargetType, credKeys []string, given string) (string, error) {
	if slices.Contains(credKeys, given) {
		return given, nil
	}
	var matches []string
	for _, k := range credKeys {
		if aliasOf(t, k) == normalise(given) {
			matches = append(matches, k)
		}
	}
	if len(matches) == 1 {
		return matches[0], nil
	}
	hint := ""
	if !catalog.IsCredential(given) {
		hint = fmt.Sprintf("; non-credential values go in --config %s=...", given)
	}
	if len(credKeys) == 0 {
		return "", usagef("--secret: this target and auth type take no credential values%s", hint)
	}
	return "", usagef("--secret: %q is not a credential key of this connection (credential keys: %s)%s",
		given, strings.Join(credKeys, ", "), hint)
}

// aliasOf is the normalised suffix a credential key answers to as an alias:
// AZURE_STORAGEBLOB_CONNECTIONSTRING -> CONNECTIONSTRING,
// spring...account-key -> ACCOUNTKEY.
func aliasOf(t catalog.TargetType, key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return normalise(key[i+1:])
	}
	return normalise(strings.TrimPrefix(key, catalog.Prefix(t)+"_"))
}

func normalise(s string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", "_", "", ".", "").Replace(s))
}

// friendly turns an alias back into what users type: CONNECTIONSTRING -> connection-string.
func friendly(alias string) string {
	switch alias {
	case "CONNECTIONSTRING":
		return "connection-string"
	case "CLIENTSECRET":
		return "client-secret"
	case "ACCOUNTKEY":
		return "account-key"
	}
	return strings.ToLower(alias)
}

// readValue expands @FILE so secrets need not appear on the command line.
func readValue(what, v string) (string, error) {
	path, ok := strings.CutPrefix(v, "@")
	if !ok {
		return v, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("%s: cannot read %s: %v", what, path, errors.Unwrap(err))
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// configurations lays out the combination's keys in catalog order with their
// values: --config first, then (for update, unless the target changed) the
// stored value, then what Derive found; extra --config keys follow.
func configurations(keys []catalog.Key, derived map[string]string, overrides []kvPair, tenantID string,
	base *connection.Spec, targetChanged bool) ([]connection.Configuration, error) {
	set := map[string]string{}
	for _, o := range overrides {
		if catalog.IsCredential(o.Key) {
			return nil, usagef("--config: %s is a credential; pass it with --secret", o.Key)
		}
		if _, dup := set[o.Key]; dup {
			return nil, usagef("--config: %s given more than once", o.Key)
		}
		set[o.Key] = o.Value
	}
	stored := map[string]string{}
	if base != nil && !targetChanged {
		for _, c := range base.Configurations {
			if !c.Credential {
				stored[c.Name] = c.Value
			}
		}
	}
	var out []connection.Configuration
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k.Name] = true
		if k.Credential {
			out = append(out, connection.Configuration{Name: k.Name, Credential: true})
			continue
		}
		v, ok := set[k.Name]
		if !ok {
			v, ok = stored[k.Name]
		}
		if !ok {
			v, ok = derived[k.Name]
		}
		if !ok && tenantID != "" && (strings.HasSuffix(k.Name, "_TENANTID") || strings.HasSuffix(k.Name, ".tenant-id")) {
			v, ok = tenantID, true
		}
		if !ok || v == "" {
			return nil, usagef("--config: %s has no value (%s); set it with --config %s=...", k.Name, describeKey(k), k.Name)
		}
		out = append(out, connection.Configuration{Name: k.Name, Value: v})
	}
	for _, o := range overrides {
		if !seen[o.Key] {
			out = append(out, connection.Configuration{Name: o.Key, Value: o.Value})
		}
	}
	return out, nil
}

func describeKey(k catalog.Key) string {
	if k.Description == "" {
		return "not derivable from --target-id"
	}
	return fmt.Sprintf("%s, not derivable from --target-id", k.Description)
}

func (f *specFlags) customized(base *connection.Spec) (map[string]string, error) {
	if !f.changed("customized-keys") {
		if base != nil {
			return base.CustomizedKeys, nil
		}
		return nil, nil
	}
	pairs, err := parseKVs("--customized-keys", f.customizedKeys)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range pairs {
		if _, dup := out[p.Key]; dup {
			return nil, usagef("--customized-keys: %s given more than once", p.Key)
		}
		out[p.Key] = p.Value
	}
	return out, nil
}
