package drift

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

const (
	ourUID    types.UID = "11111111-aaaa-4000-8000-000000000001"
	tenantUID types.UID = "22222222-bbbb-4000-8000-000000000002"
)

// owning records uid for every object c claims, as sc-job does.
func owning(c connection.Connection, uid types.UID) connection.Connection {
	c.Status.Owned = nil
	for _, r := range c.Status.Resources {
		c.Status.Own(r, string(uid))
	}
	return c
}

// Our Secret was deleted and a tenant created a same-named copy with our
// labels, annotations and data: the content is as rendered, only the UID
// says it is not ours. The change is read once and marks the connection
// Pending; sc-job then refuses the copy (SecretIsOwned).
func TestReplacedSecretMarksConnectionPending(t *testing.T) {
	a := owning(succeeded("a", ""), ourUID)
	store := newStore(a)
	f := newFixture(t, store, anywhere)
	cred := credValue()
	ours := renderedSecret("a", cred)
	ours.UID = ourUID
	f.index(recordCM(t, a), ours)
	key := objectKey{Kind: KindSecret, Namespace: "team-a", Name: "sc-a-secret"}

	require.NoError(t, f.c.sync(context.Background(), key))
	assert.Empty(t, store.calls(), "the recorded UID: ours, as rendered")

	copied := renderedSecret("a", cred)
	copied.UID, copied.ResourceVersion = tenantUID, "2"
	f.index(copied)
	require.NoError(t, f.c.sync(context.Background(), key))

	want := "Secret team-a/sc-a-secret was replaced (not the object sc-job created: its UID is " + string(tenantUID) +
		", the record holds " + string(ourUID) + "); rendering it again"
	assert.Equal(t, []string{"get secrets team-a/sc-a-secret", "get secrets team-a/sc-a-secret"}, f.reads(), "one read per version")
	assert.Equal(t, []markCall{{ID: "a", Reason: ReasonDrift, Message: want}}, store.calls())
	assert.Equal(t, []string{"Warning Drift " + want}, f.events())
	assert.Equal(t, 1.0, driftCount(t, f.metrics, KindSecret, health.ChangeReplaced), "counted as replaced, not as an edit")
	assert.Zero(t, driftCount(t, f.metrics, KindSecret, health.ChangeModified))
	assert.NotContains(t, f.logs.String(), cred)
}

// driftCount reads sc_agent_drift_detections_total{kind, change} from what
// /metrics would serve.
func driftCount(t *testing.T, m *health.Metrics, kind, change string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range families {
		if mf.GetName() != "sc_agent_drift_detections_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["change"] == change {
				return s.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A version already verified is judged from its remembered UID without a
// read: a record whose UID changed under it (sc-job re-created the object
// for another connection sharing it) is still compared.
func TestVerifiedVersionIsJudgedByItsUIDWithoutARead(t *testing.T) {
	a := owning(succeeded("a", clientID), ourUID)
	store := newStore(a)
	f := newFixture(t, store, anywhere)
	sa := renderedSA(clientID)
	sa.UID = ourUID
	f.index(recordCM(t, a), sa)
	key := objectKey{Kind: KindServiceAccount, Namespace: "team-a", Name: sa.Name}
	require.NoError(t, f.c.sync(context.Background(), key))
	require.Empty(t, store.calls())

	b := owning(succeeded("b", clientID), tenantUID) // holds another UID for the same account
	store.conns[b.Spec.ID()] = b
	f.index(recordCM(t, b))
	require.NoError(t, f.c.sync(context.Background(), key))
	assert.Equal(t, []string{"get serviceaccounts team-a/" + sa.Name}, f.reads(), "the verified version is not read again")
	require.Len(t, store.calls(), 1, "only the connection whose record holds another UID")
	assert.Equal(t, "b", store.calls()[0].ID)
	assert.Equal(t, "ServiceAccount team-a/"+sa.Name+" was replaced (not the object sc-job created: its UID is "+string(ourUID)+
		", the record holds "+string(tenantUID)+"); rendering it again", store.calls()[0].Message)
}

// A record written by a release that recorded no UIDs: the content alone
// decides, as before.
func TestLegacyRecordWithoutUIDsJudgesContentOnly(t *testing.T) {
	a := succeeded("a", "")
	store := newStore(a)
	f := newFixture(t, store, anywhere)
	s := renderedSecret("a", credValue())
	s.UID = tenantUID
	f.index(recordCM(t, a), s)
	require.NoError(t, f.c.sync(context.Background(), objectKey{Kind: KindSecret, Namespace: "team-a", Name: "sc-a-secret"}))
	assert.Equal(t, []string{"get secrets team-a/sc-a-secret"}, f.reads())
	assert.Empty(t, store.calls())
	assert.Empty(t, f.events())
}

// The records cache can lag: it still holds the UID of a Secret that was
// deleted while the record, re-read from the API, already holds the UID of
// the one sc-job created in its place. That is not drift.
func TestStaleRecordUIDIsCheckedAgainstTheStore(t *testing.T) {
	cached := owning(succeeded("a", ""), tenantUID)
	fresh := owning(succeeded("a", ""), ourUID)
	store := newStore(fresh)
	f := newFixture(t, store, anywhere)
	s := renderedSecret("a", credValue())
	s.UID = ourUID
	f.index(recordCM(t, cached), s)
	require.NoError(t, f.c.sync(context.Background(), objectKey{Kind: KindSecret, Namespace: "team-a", Name: "sc-a-secret"}))
	assert.Equal(t, []string{"get secrets team-a/sc-a-secret"}, f.reads())
	assert.Empty(t, store.calls())
	assert.Empty(t, f.events())
}

// A deletion or an edit is reported as such whatever the UIDs say.
func TestContentDriftWinsOverUID(t *testing.T) {
	a := owning(succeeded("a", ""), ourUID)
	store := newStore(a)
	f := newFixture(t, store, anywhere)
	s := renderedSecret("a", credValue())
	s.UID = tenantUID
	s.Data["AZURE_STORAGEBLOB_CONNECTIONSTRING"] = []byte(credValue())
	f.index(recordCM(t, a), s)
	require.NoError(t, f.c.sync(context.Background(), objectKey{Kind: KindSecret, Namespace: "team-a", Name: "sc-a-secret"}))
	assert.Equal(t, []markCall{{ID: "a", Reason: ReasonDrift,
		Message: "Secret team-a/sc-a-secret was modified (data changed since sc-job rendered it (hash mismatch)); rendering it again"}}, store.calls())
}
