package drift

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/kube/recordcache"
)

// ownersBySweep is how sync found the claiming connections before
// ClaimsIndex (commit ad02d28): decode every record in the cache on every
// event and keep the settled ones that claim key. It stays here as the
// reference the index must agree with and as the baseline of
// BenchmarkDriftEventSweep10k.
func (c *Controller) ownersBySweep(key objectKey) ([]storedConn, error) {
	cms, err := c.records.ConfigMaps(c.namespace).List(c.selector)
	if err != nil {
		return nil, fmt.Errorf("list records from cache: %w", err)
	}
	var out []storedConn
	for _, cm := range cms {
		conn, err := record.Decode(cm)
		if err != nil {
			c.log.Warn().Err(err).Str("objectId", record.ID(cm)).Msg("skipping undecodable record")
			continue
		}
		if conn.Status.Phase == connection.PhaseSucceeded && conn.Deletion == nil && claims(conn, key) {
			out = append(out, storedConn{id: record.ID(cm), record: cm, conn: conn})
		}
	}
	return out, nil
}

func ids(conns []storedConn) []string {
	var out []string
	for _, sc := range conns {
		out = append(out, sc.id)
	}
	return out
}

// version is cm with its connection replaced by c at resourceVersion rv.
func version(t testing.TB, cm *corev1.ConfigMap, c connection.Connection, rv string) *corev1.ConfigMap {
	t.Helper()
	out := cm.DeepCopy()
	require.NoError(t, record.Encode(out, c))
	out.ResourceVersion = rv
	return out
}

// corruptRecord is a record whose status is not JSON.
func corruptRecord(t testing.TB, name, rv string) *corev1.ConfigMap {
	t.Helper()
	cm := recordCM(t, succeeded(name, ""))
	cm.Data[record.KeyStatus] = "{"
	cm.ResourceVersion = rv
	return cm
}

// A connection moved to another namespace: its record's new version claims
// another Secret. The update files the record out of the old key and into
// the new one, so an event on the old Secret reads nothing and one on the
// new Secret is judged; a deleted record leaves the index (and the shared
// cache, on its Deleted event: pkg/kube/recordcache's own test).
func TestIndexFollowsAClaimThatChanged(t *testing.T) {
	a := succeeded("a", "")
	moved := a
	moved.Spec.Scope = "team-b"
	moved.Status.Resources = []connection.ResourceRef{{Kind: KindSecret, Namespace: "team-b", Name: "sc-a-secret"}}
	store := newStore(moved)
	f := newFixture(t, store, anywhere)
	v1 := recordCM(t, a)
	f.index(v1)
	oldKey := objectKey{Kind: KindSecret, Namespace: "team-a", Name: "sc-a-secret"}
	newKey := objectKey{Kind: KindSecret, Namespace: "team-b", Name: "sc-a-secret"}
	owners, err := f.c.owners(oldKey)
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, ids(owners))

	v2 := version(t, v1, moved, "2")
	f.index(v2)
	f.c.recordHandler().OnUpdate(v1, v2)

	byIndex := func(key objectKey) []string {
		objs, err := f.c.claimed.ByIndex(ClaimsIndex, key.String())
		require.NoError(t, err)
		var names []string
		for _, o := range objs {
			names = append(names, o.(*corev1.ConfigMap).Name)
		}
		return names
	}
	assert.Empty(t, byIndex(oldKey), "the update removed the old claim")
	assert.Equal(t, []string{"sc-conn-a"}, byIndex(newKey))

	require.NoError(t, f.c.sync(context.Background(), oldKey))
	assert.Empty(t, f.reads(), "the Secret a no longer claims is not read")
	assert.Empty(t, store.calls())
	require.NoError(t, f.c.sync(context.Background(), newKey))
	assert.Equal(t, []string{"get secrets team-b/sc-a-secret"}, f.reads())
	assert.Equal(t, []markCall{{ID: "a", Reason: ReasonDrift, Message: "Secret team-b/sc-a-secret was deleted; rendering it again"}}, store.calls())

	require.NoError(t, f.records.Core().V1().ConfigMaps().Informer().GetIndexer().Delete(v2))
	assert.Empty(t, byIndex(newKey))
	assert.EqualValues(t, 2, f.versions.Decodes(), "filing v1 out, v2 in, and v2 out again decoded nothing more")
}

// Each version of a record is decoded once, when the informer stores it,
// for every controller sharing the records' cache: ClaimsIndex, another
// controller's index on the same cache (as the launcher's are), events,
// the start-up sweep and the record handler read the cached version. A
// version that does not decode is logged once, not per event.
func TestRecordIsDecodedOncePerVersion(t *testing.T) {
	a, b := succeeded("a", clientID), succeeded("b", clientID)
	running := succeeded("run", "")
	running.Status.Phase = connection.PhaseRunning
	store := newStore(a, b, running)
	f := newFixture(t, store, anywhere)
	var filed atomic.Int32
	require.NoError(t, f.records.Core().V1().ConfigMaps().Informer().AddIndexers(cache.Indexers{
		"other-controller": f.versions.IndexFunc(func(*corev1.ConfigMap, recordcache.Version) []string {
			filed.Add(1)
			return nil
		}),
	}))
	decodes := f.versions.Decodes
	va := recordCM(t, a)
	bad := corruptRecord(t, "bad", "1")
	f.index(va, recordCM(t, b), recordCM(t, running), bad, renderedSecret("a", "x"), renderedSecret("b", "y"), renderedSA(clientID))
	assert.Equal(t, int32(4), filed.Load(), "the other index saw every record")
	assert.EqualValues(t, 4, decodes(), "one decode per record stored, for both indexes")

	keys := []objectKey{
		{Kind: KindSecret, Namespace: "team-a", Name: "sc-a-secret"},
		{Kind: KindSecret, Namespace: "team-a", Name: "sc-b-secret"},
		{Kind: KindSecret, Namespace: "team-a", Name: "sc-run-secret"},
		{Kind: KindSecret, Namespace: "team-a", Name: "sc-bad-secret"},
		{Kind: KindServiceAccount, Namespace: "team-a", Name: connection.ServiceAccountName(clientID)},
	}
	for range 5 { // a resync, a new term's list: the same versions again
		for _, k := range keys {
			require.NoError(t, f.c.sync(context.Background(), k))
		}
		require.NoError(t, f.c.sweep())
	}
	assert.EqualValues(t, 4, decodes(), "no event decodes a record again")
	assert.Empty(t, store.calls())
	assert.Equal(t, 1, strings.Count(f.logs.String(), "skipping undecodable record"), "the corrupt version is logged once")
	assert.Contains(t, f.logs.String(), `"objectId":"bad"`)

	// A new version of a: decoded once, by the index; the handler compares
	// both versions from the cache.
	edited := a
	edited.Status.Message = "re-rendered"
	va2 := version(t, va, edited, "2")
	f.index(va2)
	f.c.recordHandler().OnUpdate(va, va2)
	require.NoError(t, f.c.sync(context.Background(), keys[0]))
	assert.EqualValues(t, 5, decodes())

	// The corrupt record's next version is a new fact: logged once more.
	f.index(corruptRecord(t, "bad", "2"))
	require.NoError(t, f.c.sync(context.Background(), keys[3]))
	assert.EqualValues(t, 6, decodes())
	assert.Equal(t, 2, strings.Count(f.logs.String(), "skipping undecodable record"))
}

// A record of a newer release (record.ErrUnsupportedVersion) claims
// nothing and is named once per version as what it is, not as corrupt.
func TestNewerSchemaRecordIsSkippedAndLoggedOnce(t *testing.T) {
	a := succeeded("a", "")
	store := newStore(a)
	f := newFixture(t, store, anywhere)
	newer := recordCM(t, a)
	newer.Data[record.KeySchemaVersion] = fmt.Sprint(record.SchemaVersion + 1)
	_, err := record.Decode(newer)
	require.ErrorIs(t, err, record.ErrUnsupportedVersion)
	f.index(newer)
	key := objectKey{Kind: KindSecret, Namespace: "team-a", Name: "sc-a-secret"}
	for range 3 {
		require.NoError(t, f.c.sync(context.Background(), key))
	}
	assert.Empty(t, f.reads(), "a record drift cannot read claims nothing")
	assert.Empty(t, store.calls())
	assert.Equal(t, 1, strings.Count(f.logs.String(), "skipping a record written by a newer release"))
	assert.NotContains(t, f.logs.String(), "undecodable")
}

// An update handler that runs after two newer versions were stored finds
// its old version evicted: it decodes it again without keeping it, so the
// cache still holds the newest versions.
func TestLateHandlerDoesNotEvictNewerVersions(t *testing.T) {
	a := succeeded("a", "")
	f := newFixture(t, newStore(a), anywhere)
	decodes := f.versions.Decodes
	v1 := recordCM(t, a)
	v2 := version(t, v1, a, "2")
	v3 := version(t, v1, a, "3")
	f.index(v1)
	f.index(v2)
	f.index(v3)
	require.EqualValues(t, 3, decodes())
	f.c.recordHandler().OnUpdate(v1, v2)
	assert.EqualValues(t, 4, decodes(), "v1 was evicted: decoded again")
	f.c.recordHandler().OnUpdate(v2, v3)
	assert.EqualValues(t, 4, decodes(), "v2 and v3 are still held")
}

// The index finds exactly the connections the old sweep found, for every
// key: settled ones, shared ServiceAccounts, and none for records that are
// running, being deleted, failed or corrupt.
func TestIndexAgreesWithSweep(t *testing.T) {
	f := newFixture(t, newStore(), anywhere)
	var keys []objectKey
	for i := range 40 {
		c := succeeded(fmt.Sprintf("c%d", i), fmt.Sprintf("0ab1c2d3-0000-4000-8000-%012d", i%3))
		switch i % 5 {
		case 1:
			c.Status.Phase = connection.PhaseRunning
		case 2:
			c.Deletion = &connection.Deletion{RequestID: "r"}
		case 3:
			c.Status.Phase = connection.PhaseFailed
		}
		for _, r := range c.Status.Resources {
			keys = append(keys, objectKey{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name})
		}
		f.index(recordCM(t, c))
	}
	f.index(corruptRecord(t, "bad", "1"))
	keys = append(keys, objectKey{Kind: KindSecret, Namespace: "team-a", Name: "sc-bad-secret"})
	for _, k := range keys {
		indexed, err := f.c.owners(k)
		require.NoError(t, err)
		swept, err := f.c.ownersBySweep(k)
		require.NoError(t, err)
		assert.ElementsMatch(t, ids(swept), ids(indexed), "%s", k)
	}
}

// benchFixture holds n settled connections, each claiming its own Secret
// in team-a, and the one Secret the benchmark's events are about, verified
// once so that an event on it costs no API read.
func benchFixture(b *testing.B, n int) (*fixture, objectKey) {
	f := newFixture(b, newStore(), anywhere)
	informer := f.records.Core().V1().ConfigMaps().Informer()
	for i := range n {
		records.Index(b, f.records, recordCM(b, succeeded(fmt.Sprintf("c%05d", i), "")))
	}
	require.Len(b, informer.GetStore().List(), n)
	id := fmt.Sprintf("c%05d", n/2)
	f.index(renderedSecret(id, "v"))
	key := objectKey{Kind: KindSecret, Namespace: "team-a", Name: connection.SecretName(id)}
	require.NoError(b, f.c.sync(context.Background(), key))
	require.Equal(b, []string{"get secrets " + key.Namespace + "/" + key.Name}, f.reads())
	return f, key
}

// One event on a rendered object among 10,000 connections, through the
// index. Compare with BenchmarkDriftEventSweep10k in the same run.
func BenchmarkDriftEventAt10k(b *testing.B) {
	f, key := benchFixture(b, 10000)
	ctx := context.Background()
	for b.Loop() {
		if err := f.c.sync(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	require.Len(b, f.reads(), 1, "no event read the object again")
	require.Empty(b, f.store.calls())
}

// The same event through the old lookup: every record decoded.
func BenchmarkDriftEventSweep10k(b *testing.B) {
	f, key := benchFixture(b, 10000)
	ctx := context.Background()
	for b.Loop() {
		owners, err := f.c.ownersBySweep(key)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.c.check(ctx, key, owners); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	require.Len(b, f.reads(), 1)
	require.Empty(b, f.store.calls())
}
