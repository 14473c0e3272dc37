package intake_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/sc-extension/sc-extension/pkg/agent/intake"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/scctl/devserver"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(15 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func accepted(id string) func(protocol.StatusEvent) bool {
	return func(ev protocol.StatusEvent) bool { return ev.RequestID == id && ev.Reason == intake.ReasonAccepted }
}

func terminal(id string) func(protocol.StatusEvent) bool {
	return func(ev protocol.StatusEvent) bool {
		return ev.RequestID == id && (ev.Phase == connection.PhaseFailed || ev.Phase == connection.PhaseDeleted ||
			ev.Phase == connection.PhaseSucceeded)
	}
}

// holdConnection holds every Apply of connection name at h.
func holdConnection(name string, h *hold) func(context.Context, connection.Change) error {
	return func(ctx context.Context, ch connection.Change) error {
		if ch.Spec.Name == name {
			return h.wait(ctx, ch.RequestID)
		}
		return nil
	}
}

// (a) A connection whose request is stuck mid-apply does not delay another
// connection's request: b is accepted while a is still held.
func TestStuckConnectionDoesNotDelayOthers(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	h := newHold()
	g := &gate{before: holdConnection("bloba", h)}
	e.agent(true, g.use)
	ctx := ctxT(t)
	specA, creds := e.spec("bloba")
	specB, _ := e.spec("blobb")
	eventsA, eventsB := e.statuses("bloba"), e.statuses("blobb")

	idA, err := e.cp.Create(ctx, specA, creds)
	require.NoError(t, err)
	require.Equal(t, idA, recv(t, h.entered, "a's apply"))
	idB, err := e.cp.Create(ctx, specB, creds)
	require.NoError(t, err)
	await(t, eventsB, "b accepted while a is held", accepted(idB))
	trace, _ := g.seen()
	assert.NotContains(t, trace, "end "+idA, "a was still held when b was accepted")

	close(h.release)
	await(t, eventsA, "a accepted once released", accepted(idA))
	e.settled()
}

// (b) Requests for one connection are applied one at a time and in the
// order they were sent, with several workers, while another connection's
// request goes past them.
func TestConnectionRequestsApplyInOrder(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	h := newHold()
	var first atomic.Bool
	g := &gate{before: func(ctx context.Context, ch connection.Change) error {
		if ch.Spec.Name == "bloba" && first.CompareAndSwap(false, true) {
			return h.wait(ctx, ch.RequestID)
		}
		return nil
	}}
	e.agent(true, g.use, func(o *intake.Options) { o.Workers = 4 })
	ctx := ctxT(t)
	specA, creds := e.spec("bloba")
	specB, _ := e.spec("blobb")
	eventsA, eventsB := e.statuses("bloba"), e.statuses("blobb")

	id1, err := e.cp.Create(ctx, specA, creds)
	require.NoError(t, err)
	recv(t, h.entered, "a's create")
	var ids []string
	for i := range 3 {
		specA.Annotations = map[string]string{"rev": fmt.Sprint(i)}
		id, err := e.cp.Update(ctx, specA, creds)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	idB, err := e.cp.Create(ctx, specB, creds)
	require.NoError(t, err)
	await(t, eventsB, "b accepted past a's queue", accepted(idB))
	trace, _ := g.seen()
	for _, id := range ids {
		assert.NotContains(t, trace, "start "+id, "a's update started while its create was held")
	}

	close(h.release)
	await(t, eventsA, "a's last update accepted", accepted(ids[len(ids)-1]))
	e.settled()
	trace, tries := g.seen()
	var ofA []string
	for _, s := range trace {
		if !strings.HasSuffix(s, idB) {
			ofA = append(ofA, s)
		}
	}
	want := []string{}
	for _, id := range append([]string{id1}, ids...) {
		want = append(want, "start "+id, "end "+id)
	}
	assert.Equal(t, want, ofA, "a's requests applied one at a time, in the order sent")
	for _, id := range append([]string{id1, idB}, ids...) {
		assert.Equal(t, 1, tries[id], "request %s applied once", id)
	}
	_, applied := e.store.snapshot()
	assert.Equal(t, append([]string{id1}, ids...), slices.DeleteFunc(applied, func(s string) bool { return s == idB }))
}

// (c) A request the API server or the record refuses for good ends at once
// with one Failed status naming the cause, and the connection's next
// request is applied.
func TestPermanentStoreErrorEndsRequest(t *testing.T) {
	cm := schema.GroupResource{Resource: "configmaps"}
	tests := []struct {
		name, reason, mentions string
		err                    error
	}{
		{"corrupt-record", intake.ReasonRecordCorrupt, "corrupt",
			fmt.Errorf("store connection bloba: decode sc-blobbloba: %w", record.ErrCorrupt)},
		{"quota", intake.ReasonForbidden, "exceeded quota",
			fmt.Errorf("store connection bloba: %w", apierrors.NewForbidden(cm, "sc-blobbloba", errors.New("exceeded quota: q1")))},
		{"webhook-invalid", intake.ReasonInvalid, "invalid",
			apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, "sc-blobbloba", nil)},
		{"bad-request", intake.ReasonRejected, "admission webhook",
			apierrors.NewBadRequest("admission webhook \"x\" denied the request")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, devserver.Options{})
			var bad atomic.Value // the request id to refuse
			bad.Store("")
			g := &gate{before: func(_ context.Context, ch connection.Change) error {
				if ch.RequestID == bad.Load() {
					return tt.err
				}
				return nil
			}}
			pub := &countingStatus{}
			e.agent(true, g.use, pub.use)
			ctx := ctxT(t)
			spec, creds := e.spec("bloba")
			events := e.statuses("bloba")
			id0, err := e.cp.Create(ctx, spec, creds)
			require.NoError(t, err)
			await(t, events, "create accepted", accepted(id0))

			req := protocol.Request{Header: protocol.NewHeader(protocol.KindRequest), ID: "refused-1", Cluster: cluster,
				Op: protocol.OpUpdate, Connection: spec}
			req.Credentials, err = protocol.Seal(creds, mustPub(t, e.key))
			require.NoError(t, err)
			bad.Store(req.ID)
			_, err = e.cp.Publish(ctx, req)
			require.NoError(t, err)
			failed := await(t, events, "refused update failed", terminal(req.ID))
			assert.Equal(t, connection.PhaseFailed, failed.Phase)
			assert.Equal(t, tt.reason, failed.Reason)
			assert.Contains(t, strings.ToLower(failed.Message), tt.mentions)

			next, err := e.cp.Update(ctx, spec, creds)
			require.NoError(t, err)
			await(t, events, "the next request applied", accepted(next))
			e.settled()
			_, tries := g.seen()
			assert.Equal(t, 1, tries[req.ID], "never retried")
			assert.Equal(t, []string{"Failed/" + tt.reason}, phases(pub.of(req.ID)), "exactly one final status")
			assert.Equal(t, []string{"Failed/" + tt.reason}, phases(e.stored("bloba", req.ID)))
		})
	}
}

// (d) A transient failure keeps the request at the head of its connection,
// reports Pending with the error once (not once per attempt), and the
// request is applied when the cause goes away, with one final status; the
// request behind it waits its turn.
func TestTransientFailureReportsPendingUntilItClears(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	var failing atomic.Bool
	failing.Store(true)
	tries := make(chan string, 64)
	g := &gate{before: func(_ context.Context, ch connection.Change) error {
		if ch.Spec.Annotations["first"] == "yes" && failing.Load() {
			tries <- ch.RequestID
			return fmt.Errorf("store connection bloba: %w", apierrors.NewTooManyRequests("the API server is throttling", 1))
		}
		return nil
	}}
	pub := &countingStatus{}
	e.agent(true, g.use, pub.use)
	ctx := ctxT(t)
	spec, creds := e.spec("bloba")
	events := e.statuses("bloba")
	first := spec
	first.Annotations = map[string]string{"first": "yes"}
	id1, err := e.cp.Create(ctx, first, creds)
	require.NoError(t, err)
	id2, err := e.cp.Update(ctx, spec, creds)
	require.NoError(t, err)

	pending := await(t, events, "Pending with the error", func(ev protocol.StatusEvent) bool { return ev.RequestID == id1 })
	assert.Equal(t, connection.PhasePending, pending.Phase)
	assert.Equal(t, intake.ReasonRetrying, pending.Reason)
	assert.Contains(t, pending.Message, "throttling")
	for range 3 {
		recv(t, tries, "a failed attempt")
	}
	failing.Store(false)

	await(t, events, "applied once the cause went away", accepted(id1))
	await(t, events, "the request behind it applied next", accepted(id2))
	e.settled()
	assert.Equal(t, []string{"Pending/Retrying", "Pending/Accepted"}, phases(pub.of(id1)),
		"one Pending per distinct error, one final status")
	assert.Equal(t, []string{"Pending/Retrying", "Pending/Accepted"}, phases(e.stored("bloba", id1)))
	_, applied := e.store.snapshot()
	assert.Equal(t, []string{id1, id2}, applied)
	assert.Contains(t, e.logs.String(), `"outcome":"retry"`)
}

// (d') An attempt the API server never answers (it went away and client-go
// retries the GET in silence) is cut at AttemptTimeout and reported as a
// transient failure while the agent still leads; the request is applied
// once the store answers again.
func TestHungApplyIsCutAndReportedRetrying(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	blocked := e.store.blockApplies()
	e.agent(true, func(o *intake.Options) { o.AttemptTimeout = 100 * time.Millisecond })
	ctx := ctxT(t)
	spec, creds := e.spec("bloba")
	events := e.statuses("bloba")
	id, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	<-blocked

	pending := await(t, events, "Pending with the cut attempt's error", func(ev protocol.StatusEvent) bool { return ev.RequestID == id })
	assert.Equal(t, intake.ReasonRetrying, pending.Reason)
	assert.Contains(t, pending.Message, context.DeadlineExceeded.Error())
	e.store.unblock()
	await(t, events, "applied once the store answers", accepted(id))
	e.settled()
	_, applied := e.store.snapshot()
	assert.Equal(t, []string{id}, applied)
}

// (e) A delete stored by an agent that stopped before acking it, whose
// connection sc-job then removed, is redelivered: it is a success (the
// connection is gone), not a Failed/NotFound.
func TestRedeliveredDeleteOfRemovedConnection(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	h := newHold()
	g := &gate{after: func(ctx context.Context, ch connection.Change) error {
		if ch.Delete {
			if err := h.wait(ctx, ch.RequestID); err != nil {
				return fmt.Errorf("stored, then: %w", err)
			}
		}
		return nil
	}}
	stop, _ := e.agent(true, g.use)
	ctx := ctxT(t)
	spec, creds := e.spec("bloba")
	events := e.statuses("bloba")
	id, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	await(t, events, "created", accepted(id))

	del, err := e.cp.Delete(ctx, "bloba", true)
	require.NoError(t, err)
	recv(t, h.entered, "delete stored, not yet acked")
	// sc-job removes the connection; the agent stops before its ack
	e.store.Remove(connection.ObjectID("bloba"))
	stop()

	e.agent(true)
	ev := await(t, events, "the redelivered delete's outcome", terminal(del))
	assert.Equal(t, connection.PhaseDeleted, ev.Phase, "already deleted, not %s/%s: %s", ev.Phase, ev.Reason, ev.Message)
	e.settled()
	for _, ev := range e.stored("bloba", del) {
		assert.NotEqual(t, connection.PhaseFailed, ev.Phase, "no Failed for the delete: %s", ev.Message)
	}
	// The handled line is logged after the ack, so settled() can see the
	// ack before the line is written: wait for the line itself.
	assert.Eventually(t, func() bool { return strings.Contains(e.logs.String(), `"delivered":2`) },
		5*time.Second, 10*time.Millisecond, "the delete was redelivered")
}

// A request the server redelivers while the agent still holds it (its keep-
// alive did not reach the server in time) is applied once, and the newest
// delivery is the one acked.
func TestRedeliveryOfHeldRequestIsAppliedOnce(t *testing.T) {
	const ackWait = time.Second
	e := newEnv(t, devserver.Options{AckWait: ackWait})
	h := newHold()
	g := &gate{before: holdConnection("bloba", h)}
	e.agent(true, g.use, func(o *intake.Options) { o.InProgressEvery = time.Hour })
	ctx := ctxT(t)
	spec, creds := e.spec("bloba")
	events := e.statuses("bloba")
	id, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	recv(t, h.entered, "held apply")
	require.Eventually(t, func() bool { return strings.Contains(e.logs.String(), `"outcome":"redelivered"`) },
		15*time.Second, 20*time.Millisecond, "the server redelivered the held request")
	close(h.release)
	await(t, events, "accepted", accepted(id))
	e.settled()
	_, tries := g.seen()
	assert.Equal(t, 1, tries[id])
	calls, applied := e.store.snapshot()
	assert.Equal(t, 1, calls)
	assert.Equal(t, []string{id}, applied)
}

// A request that keeps failing transiently past MaxAge ends with
// Failed/Expired carrying the last error, and the connection moves on. The
// agent's clock jumps two hours at the first failure, so the request is
// young at its first attempt and old at its second, however loaded the
// machine.
func TestTransientFailurePastMaxAgeExpires(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	var ahead atomic.Int64 // how far the agent's clock is ahead of the stream's
	clock := intake.WithClock(func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) })
	g := &gate{before: func(_ context.Context, ch connection.Change) error {
		if ch.Spec.Annotations["doomed"] == "yes" {
			ahead.Store(int64(2 * time.Hour))
			return apierrors.NewServiceUnavailable("etcd leader changed")
		}
		return nil
	}}
	pub := &countingStatus{}
	e.agent(true, g.use, pub.use, clock, func(o *intake.Options) { o.MaxAge = time.Hour })
	ctx := ctxT(t)
	spec, creds := e.spec("bloba")
	events := e.statuses("bloba")
	doomed := spec
	doomed.Annotations = map[string]string{"doomed": "yes"}
	id, err := e.cp.Create(ctx, doomed, creds)
	require.NoError(t, err)
	ev := await(t, events, "expired", terminal(id))
	assert.Equal(t, connection.PhaseFailed, ev.Phase)
	assert.Equal(t, intake.ReasonExpired, ev.Reason)
	assert.Contains(t, ev.Message, "etcd leader changed", "the last error")
	_, tries := g.seen()
	assert.Equal(t, 1, tries[id], "tried once; expired before the second attempt reached the store")
	assert.Equal(t, []string{"Pending/Retrying", "Failed/Expired"}, phases(pub.of(id)))

	// the next request is as old by the agent's clock, but never tried
	next, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	await(t, events, "the next request applied", accepted(next))
	e.settled()
	_, applied := e.store.snapshot()
	assert.Equal(t, []string{next}, applied)
}

// A request older than MaxAge that was never tried (the agent was down
// longer than that) is desired state applied late, not dropped: it is
// applied and acked with Accepted as its one final status.
func TestOldRequestNeverTriedIsApplied(t *testing.T) {
	e := newEnv(t, devserver.Options{})
	// every request looks two hours old to the agent
	later := intake.WithClock(func() time.Time { return time.Now().Add(2 * time.Hour) })
	pub := &countingStatus{}
	e.agent(true, later, pub.use, func(o *intake.Options) { o.MaxAge = time.Hour })
	ctx := ctxT(t)
	spec, creds := e.spec("bloba")
	events := e.statuses("bloba")
	id, err := e.cp.Create(ctx, spec, creds)
	require.NoError(t, err)
	ev := await(t, events, "the old request's outcome", terminalOrAccepted(id))
	assert.Equal(t, connection.PhasePending, ev.Phase, "%s/%s: %s", ev.Phase, ev.Reason, ev.Message)
	assert.Equal(t, intake.ReasonAccepted, ev.Reason)
	e.settled()
	assert.Equal(t, []string{"Pending/Accepted"}, phases(pub.of(id)), "one final status, no Expired")
	_, applied := e.store.snapshot()
	assert.Equal(t, []string{id}, applied)
}

func terminalOrAccepted(id string) func(protocol.StatusEvent) bool {
	return func(ev protocol.StatusEvent) bool { return accepted(id)(ev) || terminal(id)(ev) }
}
