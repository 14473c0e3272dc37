package recordcache_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
)

var epoch = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t       *testing.T
	inf     cache.SharedIndexInformer
	c       *recordcache.Cache
	logs    *bytes.Buffer
	factory informers.SharedInformerFactory
}

// newFixture builds a Cache on a records informer that is not started: the
// test stores versions into its indexer as the informer would.
func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, logs: &bytes.Buffer{}}
	f.factory = informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	f.inf = f.factory.Core().V1().ConfigMaps().Informer()
	c, err := recordcache.New(f.inf, zerolog.New(f.logs))
	require.NoError(t, err)
	f.c = c
	return f
}

func (f *fixture) store(cm *corev1.ConfigMap) {
	f.t.Helper()
	require.NoError(f.t, f.inf.GetIndexer().Update(cm))
}

// version is cm holding c at resourceVersion rv.
func version(t *testing.T, cm *corev1.ConfigMap, c connection.Connection, rv string) *corev1.ConfigMap {
	t.Helper()
	out := cm.DeepCopy()
	require.NoError(t, record.Encode(out, c))
	out.ResourceVersion = rv
	return out
}

// Each stored version is decoded once, when the indexer stores it; the
// newest two are held for handlers. A handler that runs late, after two
// newer versions, gets its version decoded again without evicting them.
func TestEachVersionIsDecodedOnce(t *testing.T) {
	f := newFixture(t)
	c := records.Connection("a", connection.PhasePending, 1)
	v1 := records.ConfigMap(t, c)
	f.store(v1)
	assert.EqualValues(t, 1, f.c.Decodes())
	got := f.c.Get(v1)
	assert.Equal(t, connection.PhasePending, got.Phase)
	assert.True(t, got.HasWork)
	assert.True(t, got.DueAt.IsZero(), "due now")

	c.Status.Phase = connection.PhaseSucceeded
	v2 := version(t, v1, c, "2")
	f.store(v2)
	assert.EqualValues(t, 2, f.c.Decodes())
	assert.Equal(t, connection.PhasePending, f.c.Get(v1).Phase, "the version before is held")
	assert.Equal(t, connection.PhaseSucceeded, f.c.Get(v2).Phase)
	assert.False(t, f.c.Get(v2).HasWork)
	assert.EqualValues(t, 2, f.c.Decodes())

	v3 := version(t, v1, c, "3")
	f.store(v3)
	assert.EqualValues(t, 3, f.c.Decodes())
	assert.Equal(t, connection.PhasePending, f.c.Get(v1).Phase, "a late handler's version, decoded again")
	assert.EqualValues(t, 4, f.c.Decodes())
	f.c.Get(v2)
	f.c.Get(v3)
	assert.EqualValues(t, 4, f.c.Decodes(), "the late lookup evicted nothing")
	assert.Equal(t, 1, f.c.Len())
}

// Index functions built with IndexFunc share the cache's decode: several
// indexes on one informer still decode each version once.
func TestIndexFuncsShareTheDecode(t *testing.T) {
	f := newFixture(t)
	var phases []connection.Phase
	require.NoError(t, f.inf.AddIndexers(cache.Indexers{
		"phase": f.c.IndexFunc(func(_ *corev1.ConfigMap, v recordcache.Version) []string {
			phases = append(phases, v.Phase)
			return []string{string(v.Phase)}
		}),
		"scope": f.c.IndexFunc(func(_ *corev1.ConfigMap, v recordcache.Version) []string { return []string{v.Scope} }),
	}))
	c := records.Connection("a", connection.PhasePending, 1)
	v1 := records.ConfigMap(t, c)
	f.store(v1)
	c.Status.Phase = connection.PhaseRunning
	f.store(version(t, v1, c, "2"))
	assert.EqualValues(t, 2, f.c.Decodes(), "three index functions, two versions, two decodes")
	assert.Equal(t, []connection.Phase{connection.PhasePending, connection.PhasePending, connection.PhaseRunning}, phases,
		"the update filed the old version out, then the new one in")
	keys, err := f.inf.GetIndexer().IndexKeys("phase", string(connection.PhaseRunning))
	require.NoError(t, err)
	assert.Equal(t, []string{records.Namespace + "/sc-conn-a"}, keys)
}

// A version that does not decode is summarised by its error and logged once
// when it is stored, whatever the lookups; its next version is logged again.
func TestUndecodableVersionIsLoggedOnce(t *testing.T) {
	f := newFixture(t)
	corrupt := records.ConfigMap(t, records.Connection("bad", connection.PhasePending, 1))
	corrupt.Data[record.KeyStatus] = "{"
	newer := records.ConfigMap(t, records.Connection("newer", connection.PhasePending, 1))
	newer.Data[record.KeySchemaVersion] = fmt.Sprint(record.SchemaVersion + 1)
	f.store(corrupt)
	f.store(newer)
	for range 3 {
		require.ErrorIs(t, f.c.Get(corrupt).Err, record.ErrCorrupt)
		require.ErrorIs(t, f.c.Get(newer).Err, record.ErrUnsupportedVersion)
	}
	assert.False(t, f.c.Get(corrupt).HasWork, "an undecodable record is no work")
	assert.False(t, f.c.Get(newer).Parked())
	logs := f.logs.String()
	assert.Equal(t, 1, strings.Count(logs, "skipping undecodable record"), logs)
	assert.Equal(t, 1, strings.Count(logs, "skipping a record written by a newer release"), logs)
	assert.Contains(t, logs, `"objectId":"bad"`)

	again := corrupt.DeepCopy()
	again.ResourceVersion = "2"
	f.store(again)
	assert.Equal(t, 2, strings.Count(f.logs.String(), "skipping undecodable record"))
}

// Two controllers that were not handed one Cache build one each on the
// same informer: both register.
func TestTwoCachesOnOneInformer(t *testing.T) {
	f := newFixture(t)
	other, err := recordcache.New(f.inf, zerolog.Nop())
	require.NoError(t, err)
	f.store(records.ConfigMap(t, records.Connection("a", connection.PhasePending, 1)))
	assert.EqualValues(t, 1, f.c.Decodes())
	assert.EqualValues(t, 1, other.Decodes())
}

// A deleted record leaves the cache when the informer delivers its deletion.
func TestDeletedRecordIsDropped(t *testing.T) {
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(records.Namespace))
	c, err := recordcache.New(factory.Core().V1().ConfigMaps().Informer(), zerolog.Nop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	records.Start(t, client, 1, ctx.Done(), factory)

	cm := records.ConfigMap(t, records.Connection("a", connection.PhasePending, 1))
	_, err = client.CoreV1().ConfigMaps(records.Namespace).Create(ctx, cm, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.Len() == 1 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, client.CoreV1().ConfigMaps(records.Namespace).Delete(ctx, cm.Name, metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { return c.Len() == 0 }, 10*time.Second, 5*time.Millisecond)
	assert.EqualValues(t, 1, c.Decodes())
}

// The summary says what the launcher, statuswatch and drift decide on.
func TestVersionSummary(t *testing.T) {
	f := newFixture(t)
	parkedUntil := epoch.Add(connection.ParkedDelay)
	c := records.Connection("db1", connection.PhasePending, 3)
	c.Status.Reason, c.Status.RetryAfter, c.Status.LastRequestID = connection.ReasonNamespaceNotFound, &parkedUntil, "r7"
	c.Deletion = &connection.Deletion{RequestID: "r8"}
	secret := connection.ResourceRef{Kind: "Secret", Namespace: "team-a", Name: "sc-db1-secret"}
	account := connection.ResourceRef{Kind: "ServiceAccount", Namespace: "team-a", Name: "sc-sa"}
	c.Status.Resources = []connection.ResourceRef{secret, account, {Kind: "ConfigMap", Namespace: "team-a", Name: "sc-db1-config"}}
	c.Status.Owned = []connection.OwnedObject{{ResourceRef: secret, UID: "u1"}, {ResourceRef: account, UID: "u2"}}
	cm := records.ConfigMap(t, c)
	f.store(cm)
	v := f.c.Get(cm)
	assert.True(t, v.Parked())
	assert.Equal(t, "team-a", v.Scope)
	assert.True(t, v.HasWork)
	assert.Equal(t, parkedUntil, v.DueAt)
	assert.Equal(t, c.Status.Resources, v.Resources)
	assert.Equal(t, c.Status.Owned, v.Owned)
	assert.Equal(t, len(v.Resources), cap(v.Resources), "no spare capacity is held")
	assert.Equal(t, len(v.Owned), cap(v.Owned))
	back := v.Connection()
	assert.Equal(t, connection.PhasePending, back.Status.Phase)
	assert.Equal(t, connection.ReasonNamespaceNotFound, back.Status.Reason)
	assert.Equal(t, int64(3), back.Generation)
	assert.Equal(t, "r7", back.Status.LastRequestID)
	assert.Equal(t, ptr.To(parkedUntil), back.Status.RetryAfter)
	assert.NotNil(t, back.Deletion)
	assert.Equal(t, "db1", back.Spec.Name)
	assert.Equal(t, c.Status.Resources, back.Status.Resources)
	uid, ok := back.Status.OwnedUID(account)
	assert.True(t, ok)
	assert.Equal(t, "u2", uid)

	none := f.c.Get(records.ConfigMap(t, records.Connection("empty", connection.PhasePending, 1)))
	assert.Nil(t, none.Resources)
	assert.Nil(t, none.Owned)
}
