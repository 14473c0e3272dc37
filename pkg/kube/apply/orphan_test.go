package apply

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/render"
)

// recorded is a connection's Owner before its first status write: its record
// has a UID but holds no object.
func recorded(id, recordUID string) Owner { return Owner{ID: id, RecordUID: recordUID} }

// A run creates the Secret and dies before its status write records the
// UID: the next run (a new Applier, the record unchanged) adopts the
// orphan by its creator token, reports its UID for the record, and writes
// nothing.
func TestOrphanCreatedByADeadRunIsAdopted(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	client := newClient(namespace(ns))
	r := ref(render.KindSecret, ns, "sc-db1-secret")

	res, err := New(client, nil).Apply(context.Background(), recorded("db1", "rec-1"), objs)
	require.NoError(t, err)
	require.Len(t, res.Objects, 1)
	require.Equal(t, Created, res.Objects[0].Outcome)
	uid := res.Objects[0].UID
	require.NotEmpty(t, uid)
	live, err := client.CoreV1().Secrets(ns).Get(context.Background(), r.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, Token("rec-1", r), live.Annotations[AnnotationCreator])
	assert.Len(t, live.Annotations[AnnotationCreator], 64, "hex SHA-256")
	assert.NotContains(t, live.Annotations[AnnotationCreator], "rec-1")

	// The run died: nothing was recorded.
	client.ClearActions()
	res, err = New(client, nil).Apply(context.Background(), recorded("db1", "rec-1"), objs)
	require.NoError(t, err)
	assert.Equal(t, []Object{{Ref: r, Outcome: Unchanged, UID: uid}}, res.Objects)
	assert.Equal(t, []string{"get namespaces /team-a", "get secrets team-a/sc-db1-secret"}, fakeactions.Of(client))
}

// A look-alike carrying our labels and a creator token that is absent, or
// computed for another record or another object, is refused and never
// deleted.
func TestLookAlikeWithoutTheRightTokenIsRefused(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	r := ref(render.KindSecret, ns, "sc-db1-secret")
	for name, tok := range map[string]string{
		"no token":              "",
		"another record's":      Token("rec-2", r),
		"another object's":      Token("rec-1", ref(render.KindSecret, ns, "sc-db2-secret")),
		"another kind's":        Token("rec-1", ref(render.KindServiceAccount, ns, "sc-db1-secret")),
		"the record UID itself": "rec-1",
	} {
		t.Run(name, func(t *testing.T) {
			spoof := withUID(objs.Secret.DeepCopy(), "tenant-uid")
			if tok != "" {
				spoof.Annotations[AnnotationCreator] = tok
			}
			client := newClient(namespace(ns), spoof)
			a := New(client, nil)

			_, err := a.Apply(context.Background(), recorded("db1", "rec-1"), objs)
			require.ErrorIs(t, err, ErrSecretIsOwned)
			assert.True(t, Permanent(err))
			assert.Equal(t, []string{"get namespaces /team-a", "get secrets team-a/sc-db1-secret"}, fakeactions.Of(client))

			client.ClearActions()
			res, err := a.Delete(context.Background(), recorded("db1", "rec-1"), objs.Refs(), nil)
			require.NoError(t, err)
			assert.Equal(t, []Object{{Ref: r, Outcome: Kept}}, res.Objects)
			assert.Equal(t, []string{"get secrets team-a/sc-db1-secret"}, fakeactions.Of(client), "never deleted")
		})
	}
}

// Once the record holds a UID for the object, a replacement is refused
// even with the right token (copied off the object it replaced).
func TestReplacementOfARecordedObjectIsRefusedWhateverItsToken(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	r := ref(render.KindSecret, ns, "sc-db1-secret")
	spoof := withUID(objs.Secret.DeepCopy(), "tenant-uid")
	spoof.Annotations[AnnotationCreator] = Token("rec-1", r)
	client := newClient(namespace(ns), spoof)
	own := recorded("db1", "rec-1")
	own.Owned = []connection.OwnedObject{{ResourceRef: r, UID: "deleted-uid"}}

	_, err := New(client, nil).Apply(context.Background(), own, objs)
	require.ErrorIs(t, err, ErrSecretIsOwned)
	assert.Equal(t, []string{"get namespaces /team-a", "get secrets team-a/sc-db1-secret"}, fakeactions.Of(client))
}

// A record whose UID is unknown stamps no token: one derived from "" would
// be computable by anyone.
func TestNoTokenWithoutARecordUID(t *testing.T) {
	c, creds := secretConn(t, "db1")
	client := newClient(namespace(ns))
	_, err := New(client, nil).Apply(context.Background(), fresh("db1"), mustRender(t, c, creds))
	require.NoError(t, err)
	live, err := client.CoreV1().Secrets(ns).Get(context.Background(), "sc-db1-secret", metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotContains(t, live.Annotations, AnnotationCreator)
	assert.Empty(t, Token("", ref(render.KindSecret, ns, "sc-db1-secret")))
}

// Connection kv1's run created the shared ServiceAccount and died; kv2,
// which renders the same one, is handled first by the next run. The token
// is kv1's, a record the run knows (Recorded), so kv2 adopts it; a run
// that knows no such record refuses it.
func TestSharedServiceAccountOrphanIsAdoptedByAnotherConnection(t *testing.T) {
	objs := mustRender(t, wiConn("kv1"), nil)
	client := newClient(namespace(ns))
	_, err := New(client, nil).Apply(context.Background(), recorded("kv1", "rec-1"), render.Objects{ServiceAccount: objs.ServiceAccount})
	require.NoError(t, err)
	sa := objs.ServiceAccount.Name
	live, err := client.CoreV1().ServiceAccounts(ns).Get(context.Background(), sa, metav1.GetOptions{})
	require.NoError(t, err)

	kv2 := mustRender(t, wiConn("kv2"), nil)
	require.Equal(t, sa, kv2.ServiceAccount.Name, "shared")
	stranger := New(client, nil)
	stranger.Recorded([]connection.Connection{{Spec: wiConn("kv2").Spec, RecordUID: "rec-2"}})
	_, err = stranger.Apply(context.Background(), recorded("kv2", "rec-2"), render.Objects{ServiceAccount: kv2.ServiceAccount})
	require.ErrorIs(t, err, ErrServiceAccountIsOwned)

	client.ClearActions()
	a := New(client, nil)
	a.Recorded([]connection.Connection{
		{Spec: wiConn("kv1").Spec, RecordUID: "rec-1"}, {Spec: wiConn("kv2").Spec, RecordUID: "rec-2"},
	})
	res, err := a.Apply(context.Background(), recorded("kv2", "rec-2"), render.Objects{ServiceAccount: kv2.ServiceAccount})
	require.NoError(t, err)
	assert.Equal(t, []Object{{Ref: ref(render.KindServiceAccount, ns, sa), Outcome: Unchanged, UID: string(live.UID)}}, res.Objects)
	assert.Equal(t, []string{"get namespaces /team-a", "get serviceaccounts team-a/" + sa}, fakeactions.Of(client))
}

// Another record's token adopts only a shared object: a per-connection
// Secret carrying it was not created for this connection.
func TestAnotherRecordsTokenDoesNotAdoptAPerConnectionObject(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	r := ref(render.KindSecret, ns, "sc-db1-secret")
	live := withUID(objs.Secret.DeepCopy(), "other-uid")
	live.Annotations[AnnotationCreator] = Token("rec-2", r)
	client := newClient(namespace(ns), live)
	a := New(client, nil)
	a.Recorded([]connection.Connection{{Spec: c.Spec, RecordUID: "rec-1"}, {Spec: wiConn("kv2").Spec, RecordUID: "rec-2"}})

	_, err := a.Apply(context.Background(), recorded("db1", "rec-1"), objs)
	require.ErrorIs(t, err, ErrSecretIsOwned)
}

// An update keeps the token the create stamped, and the token alone never
// makes an object out of date.
func TestTokenIsKeptAndNeverCausesAWrite(t *testing.T) {
	c, creds := secretConn(t, "db1")
	objs := mustRender(t, c, creds)
	r := ref(render.KindSecret, ns, "sc-db1-secret")
	live := withUID(objs.Secret.DeepCopy(), "our-uid")
	live.Labels = map[string]string{"team": "x"} // forces an update
	live.Annotations[AnnotationCreator] = Token("rec-1", r)
	client := newClient(namespace(ns), live)
	own := owning("db1", render.KindSecret, live)
	own.RecordUID = "rec-1"

	res, err := New(client, nil).Apply(context.Background(), own, objs)
	require.NoError(t, err)
	assert.Equal(t, Updated, res.Objects[0].Outcome)
	got, err := client.CoreV1().Secrets(ns).Get(context.Background(), r.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, Token("rec-1", r), got.Annotations[AnnotationCreator])

	// An object without a token (created by an older release) is not
	// rewritten to gain one.
	plain := withUID(objs.Secret.DeepCopy(), "old-uid")
	client = newClient(namespace(ns), plain)
	own = owning("db1", render.KindSecret, plain)
	own.RecordUID = "rec-1"
	res, err = New(client, nil).Apply(context.Background(), own, objs)
	require.NoError(t, err)
	assert.Equal(t, Unchanged, res.Objects[0].Outcome)
	assert.Equal(t, []string{"get namespaces /team-a", "get secrets team-a/sc-db1-secret"}, fakeactions.Of(client))
}
