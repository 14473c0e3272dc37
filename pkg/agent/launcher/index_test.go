package launcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// dueWorkBySweep is how dueWork found the due records before WorkIndex:
// list and decode every record on every sync, logging each undecodable one
// each time. It stays here as the reference the index must agree with and
// as the baseline of BenchmarkLauncherSweepAt10k.
func (c *Controller) dueWorkBySweep(now time.Time) (work, error) {
	objs := c.records.List()
	var (
		items []workItem
		next  time.Time
	)
	for _, obj := range objs {
		cm := obj.(*corev1.ConfigMap)
		if record.Terminating(cm) {
			continue
		}
		conn, err := record.Decode(cm)
		if errors.Is(err, record.ErrUnsupportedVersion) {
			c.log.Warn().Err(err).Str("namespace", cm.Namespace).Str("configMap", cm.Name).Msg("skipping a record written by a newer release")
			continue
		}
		if err != nil {
			c.log.Warn().Err(err).Str("namespace", cm.Namespace).Str("configMap", cm.Name).Msg("skipping undecodable record")
			continue
		}
		at, ok := connection.DueAt(conn)
		switch {
		case !ok:
			continue
		case now.Before(at):
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		items = append(items, workItem{id: record.ID(cm), generation: conn.Generation, requestID: conn.Status.LastRequestID, record: cm})
	}
	w := newWork(items)
	w.next = next
	return w, nil
}

// store puts a new version of a record into the records informer's
// indexer, as the informer does when the watch delivers it.
func (f *fixture) store(cm *corev1.ConfigMap) {
	f.t.Helper()
	require.NoError(f.t, f.factory.Core().V1().ConfigMaps().Informer().GetIndexer().Update(cm))
}

func (f *fixture) remove(cm *corev1.ConfigMap) {
	f.t.Helper()
	require.NoError(f.t, f.factory.Core().V1().ConfigMaps().Informer().GetIndexer().Delete(cm))
}

// filed is the record names filed under value of index.
func (f *fixture) filed(index, value string) []string {
	f.t.Helper()
	keys, err := f.factory.Core().V1().ConfigMaps().Informer().GetIndexer().IndexKeys(index, value)
	require.NoError(f.t, err)
	return keys
}

// at is cm as version rv holding c.
func at(t testing.TB, cm *corev1.ConfigMap, c connection.Connection, rv string) *corev1.ConfigMap {
	t.Helper()
	out := cm.DeepCopy()
	require.NoError(t, record.Encode(out, c))
	out.ResourceVersion = rv
	return out
}

// A record moves through WorkIndex as its versions are stored: due, waiting
// out a backoff, settled, due again, removed (terminating) and deleted.
// dueWork follows it without a sweep.
func TestWorkIndexFollowsARecord(t *testing.T) {
	const key = ns + "/sc-conn-a"
	v1 := recordCM(t, "a", connection.PhasePending, 1)
	f := newFixture(t, v1, recordCM(t, "done", connection.PhaseSucceeded, 1))
	assert.Equal(t, []string{key}, f.filed(WorkIndex, WorkDue))
	assert.Empty(t, f.filed(WorkIndex, WorkWaiting))

	c := decode(t, v1)
	c.Status.Phase, c.Status.Reason, c.Status.Attempts = connection.PhasePending, connection.ReasonRetrying, 1
	c.Status.RetryAfter = ptr.To(epoch.Add(connection.RetryBase))
	f.store(at(t, v1, c, "2"))
	assert.Empty(t, f.filed(WorkIndex, WorkDue))
	assert.Equal(t, []string{key}, f.filed(WorkIndex, WorkWaiting))
	w, err := f.c.dueWork(epoch)
	require.NoError(t, err)
	assert.Empty(t, w.items, "not before its time")
	assert.Equal(t, epoch.Add(connection.RetryBase), w.next)
	w, err = f.c.dueWork(epoch.Add(connection.RetryBase))
	require.NoError(t, err)
	require.Len(t, w.items, 1, "due once its backoff ran out, still filed as waiting")
	assert.Equal(t, "a", w.items[0].id)

	c.Status.Phase, c.Status.Reason, c.Status.RetryAfter = connection.PhaseSucceeded, "", nil
	f.store(at(t, v1, c, "3"))
	assert.Empty(t, f.filed(WorkIndex, WorkDue))
	assert.Empty(t, f.filed(WorkIndex, WorkWaiting))

	c.Generation, c.Status.Phase = 2, connection.PhasePending
	v4 := at(t, v1, c, "4")
	f.store(v4)
	assert.Equal(t, []string{key}, f.filed(WorkIndex, WorkDue))
	w, err = f.c.dueWork(epoch)
	require.NoError(t, err)
	assert.Equal(t, newWork([]workItem{item("a", 2)}).digest, w.digest)

	removed := v4.DeepCopy()
	removed.ResourceVersion, removed.DeletionTimestamp = "5", &metav1.Time{Time: epoch}
	f.store(removed)
	assert.Empty(t, f.filed(WorkIndex, WorkDue), "a removed record is no work")

	f.remove(removed)
	assert.Empty(t, f.filed(WorkIndex, WorkDue))
	assert.Empty(t, f.filed(WorkIndex, WorkWaiting))
	w, err = f.c.dueWork(epoch)
	require.NoError(t, err)
	assert.Empty(t, w.items)
	assert.True(t, w.next.IsZero())
}

// A parked record is filed under its target namespace while it is parked:
// woken, it leaves; parked on another namespace, it moves; deleted, it is
// gone. A namespace's wake reads only the records filed under it.
func TestParkedIndexFollowsARecord(t *testing.T) {
	const key = ns + "/sc-conn-db1"
	v1 := parkedCM(t, "db1")
	f := newFixture(t, v1, recordCM(t, "done", connection.PhaseSucceeded, 1),
		waitingCM(t, "r1", connection.PhasePending, connection.ReasonRetrying, 1, epoch.Add(time.Minute)))
	indexer := f.factory.Core().V1().ConfigMaps().Informer().GetIndexer()
	assert.Equal(t, []string{"team-a"}, indexer.ListIndexFuncValues(ParkedIndex), "only the parked record's namespace waits")
	assert.Equal(t, []string{key}, f.filed(ParkedIndex, "team-a"))

	woken := decode(t, v1)
	woken.Status.Reason, woken.Status.RetryAfter = ReasonNamespaceCreated, nil
	f.store(at(t, v1, woken, "2"))
	assert.Empty(t, f.filed(ParkedIndex, "team-a"))
	assert.Equal(t, []string{key}, f.filed(WorkIndex, WorkDue), "woken is due")

	moved := decode(t, v1)
	moved.Spec.Scope = "team-b"
	v3 := at(t, v1, moved, "3")
	f.store(v3)
	assert.Empty(t, f.filed(ParkedIndex, "team-a"))
	assert.Equal(t, []string{key}, f.filed(ParkedIndex, "team-b"))
	assert.ElementsMatch(t, []string{key, ns + "/sc-conn-r1"}, f.filed(WorkIndex, WorkWaiting), "parked is waiting, not due")

	// team-a appears: nothing waits for it any more, nothing is read or written.
	require.NoError(t, f.factory.Core().V1().Namespaces().Informer().GetIndexer().Add(namespaceObj("team-a", "uid-ns-1")))
	f.processWake("team-a")
	assert.Empty(t, f.actions())

	f.remove(v3)
	assert.Empty(t, indexer.ListIndexFuncValues(ParkedIndex))
	assert.Equal(t, []string{ns + "/sc-conn-r1"}, f.filed(WorkIndex, WorkWaiting))
}

// Each version of a record is decoded once, when the informer stores it:
// syncs, the wake and the record handlers read the cached version. A version
// that does not decode is logged once, not on every sync.
func TestRecordIsDecodedOncePerVersion(t *testing.T) {
	corrupt := recordCM(t, "bad", connection.PhasePending, 1)
	corrupt.Data[record.KeyStatus] = "{"
	newer := recordCM(t, "newer", connection.PhasePending, 1)
	newer.Data[record.KeySchemaVersion] = fmt.Sprint(record.SchemaVersion + 1)
	parked := parkedCM(t, "db1")
	f := newFixture(t, parked, corrupt, newer,
		recordCM(t, "done", connection.PhaseSucceeded, 1),
		waitingCM(t, "r1", connection.PhasePending, connection.ReasonRetrying, 1, epoch.Add(time.Minute)),
		withCondition(ourJob(), batchv1.JobFailed, "BackoffLimitExceeded", epoch))
	decodes := f.c.versions.Decodes()
	assert.EqualValues(t, 5, decodes, "one decode per record stored")

	for range 5 { // events, resyncs, requeues: the same versions again
		f.process()
		f.processWake("team-a")
		f.c.wake.recordChanged(parked)
		f.c.wake.recordChanged(corrupt)
		for f.c.wake.worker.Queue().Len() > 0 {
			require.True(t, f.c.wake.worker.ProcessNextWorkItem(context.Background()))
		}
	}
	assert.Empty(t, f.actions(), "nothing due, the namespace does not exist")
	assert.Equal(t, decodes, f.c.versions.Decodes(), "no sync decodes a record again")
	logs := f.logs.String()
	assert.Equal(t, 1, strings.Count(logs, "skipping undecodable record"), logs)
	assert.Equal(t, 1, strings.Count(logs, "skipping a record written by a newer release"), logs)
	assert.Contains(t, logs, `"objectId":"bad"`)

	// A new version is decoded once more, and a corrupt record's new
	// version is a new fact: logged once more.
	c := decode(t, parked)
	c.Status.Reason, c.Status.RetryAfter = ReasonNamespaceCreated, nil
	f.store(at(t, parked, c, "2"))
	f.store(func() *corev1.ConfigMap { v := corrupt.DeepCopy(); v.ResourceVersion = "2"; return v }())
	f.client.ClearActions()
	f.process()
	assert.Equal(t, decodes+2, f.c.versions.Decodes())
	assert.Equal(t, []string{deleteJob, createJob}, f.actions(), "the woken record is work")
	assert.Equal(t, 2, strings.Count(f.logs.String(), "skipping undecodable record"))
}

// WorkIndex finds exactly what the sweep found, whatever the mix of
// records and the time: the same items, digest and next look.
func TestIndexAgreesWithSweep(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	objs := benchRecords(t, 600, rng)
	f := newFixture(t, objs...)
	for _, d := range []time.Duration{0, time.Second, connection.RetryBase, time.Minute, 3 * time.Minute, connection.ParkedDelay, time.Hour} {
		now := epoch.Add(d)
		got, err := f.c.dueWork(now)
		require.NoError(t, err)
		want, err := f.c.dueWorkBySweep(now)
		require.NoError(t, err)
		assert.Equal(t, want.digest, got.digest, "at +%s", d)
		assert.Equal(t, want.next, got.next, "at +%s", d)
		assert.Equal(t, len(want.items), len(got.items), "at +%s", d)
		assert.NotEmpty(t, want.items, "the mix has due records at +%s", d)
	}
}

// benchRecords is n records in a mix a large cluster holds: mostly
// settled, some pending, retrying, failed or parked, a few removed, one
// corrupt and one of a newer release.
func benchRecords(t testing.TB, n int, rng *rand.Rand) []runtime.Object {
	objs := make([]runtime.Object, 0, n)
	for i := range n {
		id := fmt.Sprintf("conn-%05d", i)
		var cm *corev1.ConfigMap
		switch p := rng.IntN(100); {
		case p < 80:
			cm = recordCM(t, id, connection.PhaseSucceeded, 1)
		case p < 85:
			cm = recordCM(t, id, connection.PhasePending, 2)
		case p < 90:
			cm = waitingCM(t, id, connection.PhasePending, connection.ReasonRetrying, 2, epoch.Add(time.Duration(rng.IntN(300))*time.Second))
		case p < 94:
			cm = waitingCM(t, id, connection.PhaseFailed, "SecretIsOwned", 1, epoch.Add(time.Duration(rng.IntN(600))*time.Second))
		case p < 98:
			cm = waitingCM(t, id, connection.PhasePending, connection.ReasonNamespaceNotFound, 1, epoch.Add(connection.ParkedDelay))
		default:
			cm = recordCM(t, id, connection.PhaseRunning, 1)
			cm.DeletionTimestamp = &metav1.Time{Time: epoch}
		}
		objs = append(objs, cm)
	}
	corrupt := recordCM(t, "corrupt", connection.PhasePending, 1)
	corrupt.Data[record.KeyGeneration] = "x"
	newer := recordCM(t, "newer", connection.PhasePending, 1)
	newer.Data[record.KeySchemaVersion] = fmt.Sprint(record.SchemaVersion + 1)
	return append(objs, corrupt, newer)
}

// settledRecords is n Succeeded records and ten that back off: a large
// cluster at rest.
func settledRecords(t testing.TB, n int) []runtime.Object {
	objs := make([]runtime.Object, 0, n)
	for i := range n - 10 {
		objs = append(objs, recordCM(t, fmt.Sprintf("conn-%05d", i), connection.PhaseSucceeded, 1))
	}
	for i := range 10 {
		objs = append(objs, waitingCM(t, fmt.Sprintf("wait-%02d", i), connection.PhaseFailed, "SecretIsOwned", 1, epoch.Add(time.Hour)))
	}
	return objs
}

// rerenderRecords is n Pending records (a helm upgrade re-renders all) and
// the failed sc-job run for exactly that work, kept for inspection: each
// sync computes the whole due work and keeps the Job.
func rerenderRecords(t testing.TB, n int) []runtime.Object {
	objs := make([]runtime.Object, 0, n+1)
	items := make([]workItem, 0, n)
	for i := range n {
		c := records.Connection(fmt.Sprintf("conn-%05d", i), connection.PhasePending, 2)
		objs = append(objs, records.ConfigMap(t, c))
		items = append(items, item(c.Spec.ID(), 2))
	}
	return append(objs, withCondition(ourJob(items...), batchv1.JobFailed, "BackoffLimitExceeded", epoch))
}

// BenchmarkLauncherSyncAt10k is one launcher sync with 10,000 records in
// the cache: at rest (nothing due, ten backing off, no Job) and during a
// re-render of all of them (a failed run kept). Compare with
// BenchmarkLauncherSweepAt10k in the same run: the ratio, not the time, is
// the result.
func BenchmarkLauncherSyncAt10k(b *testing.B) {
	for name, objs := range map[string]func(testing.TB, int) []runtime.Object{"settled": settledRecords, "rerender": rerenderRecords} {
		b.Run(name, func(b *testing.B) {
			f := newFixture(b, objs(b, 10000)...)
			ctx := context.Background()
			decodes := f.c.versions.Decodes()
			for b.Loop() {
				if _, err := f.c.sync(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			require.Empty(b, f.actions())
			require.Equal(b, decodes, f.c.versions.Decodes(), "no sync decoded a record")
		})
	}
}

// The same syncs' record sweep as it was before WorkIndex: every record
// decoded (then the Job read, which is all the old sync did besides).
func BenchmarkLauncherSweepAt10k(b *testing.B) {
	for name, objs := range map[string]func(testing.TB, int) []runtime.Object{"settled": settledRecords, "rerender": rerenderRecords} {
		b.Run(name, func(b *testing.B) {
			f := newFixture(b, objs(b, 10000)...)
			for b.Loop() {
				if _, err := f.c.dueWorkBySweep(f.clock.Now()); err != nil {
					b.Fatal(err)
				}
				if _, err := f.c.jobs.Jobs(ns).Get(DefaultJobName); err != nil && !apierrors.IsNotFound(err) {
					b.Fatal(err)
				}
			}
		})
	}
}
