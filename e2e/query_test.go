//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// TestListConfigurationHidesCredentials: as in Azure, credential values come
// back as empty strings.
func TestListConfigurationHidesCredentials(t *testing.T) {
	e := product(t)
	ns := e.targetNamespace(t)
	spec, creds := buildSpec(t, uniq("listcfg"), ns, catalog.TargetStorageBlob, catalog.AuthServicePrincipal, blobID)
	spec.CustomizedKeys = map[string]string{"AZURE_STORAGEBLOB_CLIENTSECRET": "MY_SECRET"}
	require.Equal(t, connection.PhaseSucceeded, e.apply(t, protocol.OpCreate, spec, creds).Phase)

	var items []protocol.ConfigurationItem
	e.query(t, protocol.VerbListConfiguration, uniq("listcfg"), &items)
	got := map[string]protocol.ConfigurationItem{}
	for _, it := range items {
		got[it.Name] = it
	}
	require.Contains(t, got, "MY_SECRET", "names are shown as rendered")
	assert.True(t, got["MY_SECRET"].Credential)
	assert.Empty(t, got["MY_SECRET"].Value)
	assert.Equal(t, "https://acct.blob.core.windows.net/", got["AZURE_STORAGEBLOB_RESOURCEENDPOINT"].Value)

	var list []protocol.ConnectionView
	e.query(t, protocol.VerbList, "", &list)
	var names []string
	for _, v := range list {
		names = append(names, v.Spec.Name)
	}
	assert.Contains(t, names, uniq("listcfg"))
}

// TestDriftIsReportedAndRepaired deletes a rendered Secret with the API (as
// kubectl delete would): validate reports it at once, and the agent renders
// it again without a new request.
func TestDriftIsReportedAndRepaired(t *testing.T) {
	e := product(t)
	ns := e.targetNamespace(t)
	ctx := context.Background()
	cs := e.cluster.Clientset
	spec, creds := buildSpec(t, uniq("drifty"), ns, catalog.TargetStorageBlob, catalog.AuthWorkloadIdentity, blobID)
	require.Equal(t, connection.PhaseSucceeded, e.apply(t, protocol.OpCreate, spec, creds).Phase)

	var report protocol.ValidateResult
	e.query(t, protocol.VerbValidate, uniq("drifty"), &report)
	require.True(t, report.Valid, "%+v", report.Checks)

	before, err := getSecret(ctx, cs, ns, connection.SecretName(uniq("drifty")))
	require.NoError(t, err)
	require.NoError(t, cs.CoreV1().Secrets(ns).Delete(ctx, before.Name, metav1.DeleteOptions{}))

	// Either validate catches the missing Secret, or the repair was faster
	// than our query; the repaired Secret must be a new object either way.
	e.query(t, protocol.VerbValidate, uniq("drifty"), &report)
	if !report.Valid {
		failed := 0
		for _, c := range report.Checks {
			if c.Result != "Success" {
				failed++
			}
		}
		assert.Positive(t, failed, "an invalid report names the failing check")
	}
	eventually(t, 2*time.Minute, "the Secret to be rendered again", func(ctx context.Context) (bool, error) {
		s, err := getSecret(ctx, cs, ns, before.Name)
		return err == nil && s.UID != before.UID, nil
	})
	eventually(t, time.Minute, "validate to pass again", func(ctx context.Context) (bool, error) {
		var r protocol.ValidateResult
		err := e.cp.Query(ctx, protocol.Query{Header: protocol.NewHeader(protocol.KindQuery), Verb: protocol.VerbValidate, Connection: uniq("drifty")}, &r)
		return err == nil && r.Valid, err
	})
	evs, err := cs.CoreV1().Events(systemNS).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var sawDrift bool
	for _, ev := range evs.Items {
		if ev.InvolvedObject.Name == connection.ConfigMapName(uniq("drifty")) && ev.Reason == "Drift" {
			sawDrift = true
		}
	}
	assert.True(t, sawDrift, "an Event on the connection records the drift")
}
