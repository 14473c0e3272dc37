//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

const (
	blobID    = "/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct/blobServices/default"
	vaultID   = "/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/vault1"
	clientID  = "11111111-2222-4333-8444-555555555555"
	tenantID  = "99999999-8888-4777-8666-555555555555"
	opTimeout = 3 * time.Minute
)

// runID makes this run's connection names unique: records in sc-system
// outlive test namespaces, and a reused cluster still has earlier runs'.
var runID = func() string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "r" + hex.EncodeToString(b)
}()

// uniq suffixes a connection name with the run id; lowercase alphanumeric
// bases keep their object id readable (no hash).
func uniq(base string) string { return base + runID }

// credValues records every credential value this suite sends, so the leak
// scan can look for each of them.
var credValues []string

// newCredential returns a recognisable, unique credential value.
func newCredential() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	v := "cred-VALUE-" + hex.EncodeToString(b)
	credValues = append(credValues, v)
	return v
}

// buildSpec does what scctl does: keys from the catalog, values derived from
// the target id, the rest filled in, credentials kept apart.
func buildSpec(t *testing.T, name, ns string, target catalog.TargetType, auth catalog.AuthType, targetID string) (connection.Spec, connection.Credentials) {
	t.Helper()
	spec, creds, err := specFor(name, ns, target, auth, targetID)
	require.NoError(t, err)
	return spec, creds
}

// specFor is buildSpec for the suite's end, which runs after the tests.
func specFor(name, ns string, target catalog.TargetType, auth catalog.AuthType, targetID string) (connection.Spec, connection.Credentials, error) {
	spec := connection.Spec{Name: name, Scope: ns, TargetService: connection.TargetService{Type: target, ID: targetID},
		AuthInfo: connection.AuthInfo{AuthType: auth}, ClientType: catalog.ClientNone}
	if auth != catalog.AuthSecret {
		spec.AuthInfo.ClientID = clientID
		spec.AuthInfo.TenantID = tenantID
	}
	keys, err := catalog.Keys(target, auth, catalog.ClientNone)
	if err != nil {
		return spec, nil, err
	}
	derived, err := catalog.Derive(target, auth, catalog.ClientNone, targetID, clientID)
	if err != nil {
		return spec, nil, err
	}
	creds := connection.Credentials{}
	for _, k := range keys {
		cfg := connection.Configuration{Name: k.Name, Credential: k.Credential}
		switch {
		case k.Credential:
			creds[k.Name] = newCredential()
		case derived[k.Name] != "":
			cfg.Value = derived[k.Name]
		case strings.HasSuffix(k.Name, "_TENANTID"):
			cfg.Value = tenantID
		case strings.HasSuffix(k.Name, "_CLIENTID"):
			cfg.Value = clientID
		default:
			cfg.Value = "value-of-" + strings.ToLower(k.Name)
		}
		spec.Configurations = append(spec.Configurations, cfg)
	}
	return spec, creds, connection.Validate(spec, creds)
}

// apply sends a create or update and waits for its outcome.
func (e *env) apply(t *testing.T, op protocol.Op, spec connection.Spec, creds connection.Credentials) protocol.StatusEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	send := e.cp.Create
	if op == protocol.OpUpdate {
		send = e.cp.Update
	}
	id, err := send(ctx, spec, creds)
	require.NoError(t, err)
	if op == protocol.OpCreate {
		e.deleteAtCleanup(t, spec.Name)
	}
	ev, err := e.cp.Wait(ctx, spec.Name, id, func(ev protocol.StatusEvent) {
		t.Logf("status %s: %s gen %d %s %s", ev.Connection, ev.Phase, ev.Generation, ev.Reason, ev.Message)
	})
	require.NoError(t, err)
	return ev
}

// deleteAtCleanup deletes the connection (and what it rendered) when the
// test ends, before its namespace goes: a record whose namespace is gone
// would fail every later render, the install/upgrade hook's included.
func (e *env) deleteAtCleanup(t *testing.T, name string) {
	t.Cleanup(func() {
		if e.uninstalled {
			return // no agent left to apply it; the next install purges records
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		id, err := e.cp.Delete(ctx, name, true)
		if err != nil {
			t.Errorf("cleanup: delete %s: %v", name, err)
			return
		}
		if _, err := e.cp.Wait(ctx, name, id, nil); err != nil {
			t.Errorf("cleanup: delete %s: %v", name, err)
		}
	})
}

func (e *env) remove(t *testing.T, name string, deleteResources bool) protocol.StatusEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	id, err := e.cp.Delete(ctx, name, deleteResources)
	require.NoError(t, err)
	ev, err := e.cp.Wait(ctx, name, id, nil)
	require.NoError(t, err)
	return ev
}

func (e *env) query(t *testing.T, verb protocol.Verb, name string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.cp.Query(ctx, protocol.Query{Header: protocol.NewHeader(protocol.KindQuery), Verb: verb, Connection: name}, out))
}
