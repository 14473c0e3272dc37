package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/agent/launcher"
	"github.com/sc-extension/sc-extension/pkg/agent/query"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
	"github.com/sc-extension/sc-extension/pkg/scctl/controlplane"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// cached runs a query Cache over a fake API server holding objs and waits
// until it has synced.
func cached(t testing.TB, objs ...runtime.Object) (*query.Cache, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := launcher.NewRecordsFactory(client, records.Namespace, 0)
	c, err := query.NewCache(factory, zerolog.Nop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Started and watching before the test changes anything: the fake API
	// server does not replay changes made between its list and its watch.
	records.Start(t, client, 1, ctx.Done(), factory)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	_, err = c.Snapshot(sctx)
	require.NoError(t, err, "cache synced")
	return c, client
}

// serveCache answers queries from c; the Reader holds nothing, so every
// answer comes from the cache.
func serveCache(t testing.TB, c *query.Cache) (*controlplane.Client, *nats.Conn) {
	t.Helper()
	return serveWith(t, query.Options{Cache: c, Reader: reader{conns: map[string]connection.Connection{}}})
}

// stored is the record ConfigMap of a connection named name in namespace
// ns, encoded by the real codec.
func stored(t testing.TB, name, ns string) *corev1.ConfigMap {
	t.Helper()
	c := records.Connection(name, connection.PhaseSucceeded, 1)
	c.Spec.Scope = ns
	return records.ConfigMap(t, c)
}

func names(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}

func objects(cms ...*corev1.ConfigMap) []runtime.Object {
	out := make([]runtime.Object, len(cms))
	for i, cm := range cms {
		out[i] = cm
	}
	return out
}

// rawQuery sends q as scctl would and returns the reply's bytes, so a test
// can check their size and shape.
func rawQuery(t testing.TB, nc *nats.Conn, q protocol.Query) []byte {
	t.Helper()
	q.Header = protocol.NewHeader(protocol.KindQuery)
	b, err := protocol.Encode(q)
	require.NoError(t, err)
	return rawRequest(t, nc, protocol.QuerySubject(cluster, q.Verb), b)
}

func rawRequest(t testing.TB, nc *nats.Conn, subject string, data []byte) []byte {
	t.Helper()
	msg, err := nc.Request(subject, data, 10*time.Second)
	require.NoError(t, err)
	return msg.Data
}

func page(t testing.TB, nc *nats.Conn, q protocol.Query) (protocol.ListPage, int) {
	t.Helper()
	data := rawQuery(t, nc, q)
	var r protocol.Reply
	require.NoError(t, protocol.Decode(data, protocol.KindReply, &r))
	require.Nil(t, r.Error, "%+v", r.Error)
	var p protocol.ListPage
	require.NoError(t, json.Unmarshal(r.Result, &p))
	return p, len(data)
}

// A walk through the pages returns every record exactly once, in name
// order, while records are created and deleted between its pages: those
// created ahead of its position appear once, those behind it never, those
// deleted ahead of it are not listed.
func TestListPagesEveryRecordOnceWhileRecordsChange(t *testing.T) {
	var cms []*corev1.ConfigMap
	for _, n := range names(60, "b") {
		cms = append(cms, stored(t, n, "team-a"))
	}
	c, client := cached(t, objects(cms...)...)
	// The agent's NATS connection serves; the test asks on its own.
	_, nc := serveCache(t, c)
	ctx := context.Background()

	seen := map[string]int{}
	var order []string
	q := protocol.Query{Verb: protocol.VerbList, Limit: 7}
	pages := 0
	for {
		p, _ := page(t, nc, q)
		pages++
		require.LessOrEqual(t, len(p.Items), 7)
		for _, v := range p.Items {
			seen[v.Spec.Name]++
			order = append(order, v.Spec.Name)
		}
		if pages == 2 {
			// Behind the position (a...), ahead of it (c...), and one ahead
			// removed; the next page is read once the cache holds them all.
			for _, cm := range []*corev1.ConfigMap{stored(t, "a0001", "team-a"), stored(t, "c0001", "team-a")} {
				_, err := client.CoreV1().ConfigMaps(records.Namespace).Create(ctx, cm, metav1.CreateOptions{})
				require.NoError(t, err)
			}
			require.NoError(t, client.CoreV1().ConfigMaps(records.Namespace).Delete(ctx, connection.ConfigMapName("b0050"), metav1.DeleteOptions{}))
			// All three changes, not just a count of 61: the count is also
			// reached after the first create alone.
			require.Eventually(t, func() bool {
				s, err := c.Snapshot(ctx)
				return err == nil && s.Has("a0001") && s.Has("c0001") && !s.Has("b0050")
			}, 10*time.Second, 5*time.Millisecond)
		}
		if p.Continue == "" {
			break
		}
		q.Continue = p.Continue
	}
	assert.Equal(t, 9, pages, "61 records in pages of 7")
	assert.True(t, sort.StringsAreSorted(order), "name order across pages")
	for _, n := range names(60, "b") {
		if n == "b0050" {
			assert.Zero(t, seen[n], "deleted ahead of the walk")
			continue
		}
		assert.Equal(t, 1, seen[n], n)
	}
	assert.Zero(t, seen["a0001"], "created behind the walk")
	assert.Equal(t, 1, seen["c0001"], "created ahead of the walk")

	// scctl's walk over the same records, filtered by namespace server side.
	require.NoError(t, client.CoreV1().ConfigMaps(records.Namespace).Delete(ctx, connection.ConfigMapName("c0001"), metav1.DeleteOptions{}))
	_, err := client.CoreV1().ConfigMaps(records.Namespace).Create(ctx, stored(t, "other", "team-b"), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		s, err := c.Snapshot(ctx)
		return err == nil && !s.Has("c0001") && s.Has("other")
	}, 10*time.Second, 5*time.Millisecond)
	cp, _ := serveCache(t, c)
	all, err := controlplane.List(ctx, cp, controlplane.ListOptions{Limit: 10})
	require.NoError(t, err)
	assert.Len(t, all.Items, 61)
	assert.Equal(t, 7, all.Pages)
	onlyB, err := controlplane.List(ctx, cp, controlplane.ListOptions{Namespace: "team-b", Limit: 10})
	require.NoError(t, err)
	require.Len(t, onlyB.Items, 1)
	assert.Equal(t, "other", onlyB.Items[0].Spec.Name)
	assert.Equal(t, 1, onlyB.Pages, "no empty trailing page after the last match")
}

func TestBadPageRequestsAreInvalid(t *testing.T) {
	c, _ := cached(t, stored(t, "one", "team-a"))
	cp, _ := serveCache(t, c)
	for name, q := range map[string]protocol.Query{
		"negative limit": {Verb: protocol.VerbList, Limit: -1},
		"forged token":   {Verb: protocol.VerbList, Limit: 5, Continue: "bm90IG91cnM"},
		"not base64":     {Verb: protocol.VerbList, Limit: 5, Continue: "!!"},
	} {
		t.Run(name, func(t *testing.T) {
			err := cp.Query(context.Background(), q, nil)
			var re *protocol.ReplyError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, protocol.CodeInvalid, re.Code, re.Message)
		})
	}
}

// withValue is a connection whose one configuration value is size bytes.
func withValue(t testing.TB, name string, size int) *corev1.ConfigMap {
	t.Helper()
	c := records.Connection(name, connection.PhaseSucceeded, 1)
	c.Spec.Configurations = []connection.Configuration{{Name: "BIG", Value: strings.Repeat("v", size)}}
	return records.ConfigMap(t, c)
}

// largestRequestSpec is a connection named name as large as a request may
// carry: its request envelope is a few bytes under MaxMessageBytes and
// passes the agent's own decoding.
func largestRequestSpec(t testing.TB, name string) *corev1.ConfigMap {
	t.Helper()
	c := records.Connection(name, connection.PhaseSucceeded, 1)
	req := protocol.Request{Header: protocol.NewHeader(protocol.KindRequest), ID: "r1", Cluster: cluster, Op: protocol.OpCreate,
		SentAt: time.Now().UTC(), Connection: c.Spec}
	empty, err := protocol.Encode(req)
	require.NoError(t, err)
	req.Connection.Configurations = []connection.Configuration{{Name: "BIG"}}
	withKey, err := protocol.Encode(req)
	require.NoError(t, err)
	req.Connection.Configurations[0].Value = strings.Repeat("v", protocol.MaxMessageBytes-len(withKey)-8)
	b, err := protocol.Encode(req)
	require.NoError(t, err)
	_, err = protocol.DecodeRequest(b)
	require.NoError(t, err, "a request this large is accepted")
	require.Greater(t, len(b), protocol.MaxMessageBytes-16)
	require.Greater(t, len(b), len(empty))
	c.Spec = req.Connection
	return records.ConfigMap(t, c)
}

// Every reply stays under MaxMessageBytes whatever the connections' sizes:
// the largest spec a request can carry is reported as too large rather
// than failing its page; specs of 100 KiB fill pages of two; a thousand
// typical connections asked for at the maximum page size end their page by
// bytes. Every record is in exactly one page either way.
func TestPagesStayUnderTheMessageLimit(t *testing.T) {
	var cms []*corev1.ConfigMap
	for _, n := range names(9, "mid") {
		cms = append(cms, withValue(t, n, 100<<10))
	}
	cms = append(cms, largestRequestSpec(t, "huge"))
	for _, n := range names(1000, "typical") {
		c := records.Connection(n, connection.PhaseSucceeded, 1)
		spec, _ := largeTypical(n)
		c.Spec = spec
		cms = append(cms, records.ConfigMap(t, c))
	}
	c, _ := cached(t, objects(cms...)...)
	_, nc := serveCache(t, c)

	seen := map[string]int{}
	var tooLarge []protocol.RecordError
	q := protocol.Query{Verb: protocol.VerbList, Limit: protocol.MaxPageSize * 10} // capped by the agent
	var sizes []int
	for {
		p, size := page(t, nc, q)
		require.LessOrEqual(t, size, protocol.MaxMessageBytes)
		require.LessOrEqual(t, len(p.Items)+len(p.Errors), protocol.MaxPageSize)
		if len(p.Items)+len(p.Errors) > 1 {
			require.LessOrEqual(t, size, protocol.MaxMessageBytes/2+1024, "a page of several records is half the limit")
		}
		sizes = append(sizes, size)
		for _, v := range p.Items {
			seen[v.Spec.Name]++
		}
		tooLarge = append(tooLarge, p.Errors...)
		if p.Continue == "" {
			break
		}
		q.Continue = p.Continue
	}
	require.Len(t, tooLarge, 1)
	assert.Equal(t, "huge", tooLarge[0].ObjectID)
	assert.Equal(t, protocol.RecordTooLarge, tooLarge[0].Reason)
	assert.Contains(t, tooLarge[0].Message, "sc-conn-huge")
	assert.Len(t, seen, 1009)
	for n, k := range seen {
		require.Equal(t, 1, k, n)
	}
	// huge reported in a page of its own; mid alone each (a second would
	// pass half the limit); typical ones by bytes, not 1000 a page
	assert.Greater(t, len(sizes), 1+9+2, "typical connections did not fit one page: %v", sizes)
	t.Logf("%d pages, bytes: %v", len(sizes), sizes)
}

// largeTypical is a connection as large as the catalog's keys, Azure's
// name limits and a generous status make one without an oversized value:
// the size DefaultPageSize is chosen for.
func largeTypical(name string) (connection.Spec, connection.Status) {
	long := func(n int) string { return strings.Repeat("x", n) }
	spec := connection.Spec{
		Name: name, Scope: "team-" + long(58),
		TargetService: connection.TargetService{Type: "storage-blob",
			ID: "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/" + long(90) +
				"/providers/Microsoft.Storage/storageAccounts/" + long(24)},
		AuthInfo: connection.AuthInfo{AuthType: "servicePrincipalSecret", ClientID: "00000000-0000-0000-0000-000000000000",
			TenantID: "00000000-0000-0000-0000-000000000000", SubscriptionID: "00000000-0000-0000-0000-000000000000"},
		ClientType:     "python",
		CustomizedKeys: map[string]string{},
		Labels:         map[string]string{}, Annotations: map[string]string{},
	}
	for i := range 6 {
		key := fmt.Sprintf("AZURE_STORAGEBLOB_KEY%d", i)
		spec.Configurations = append(spec.Configurations, connection.Configuration{Name: key, Value: "https://" + long(24) + ".blob.core.windows.net/"})
		spec.CustomizedKeys[key] = "CUSTOM_" + key
		spec.Labels[fmt.Sprintf("example.com/label-%d", i)] = long(63)
		spec.Annotations[fmt.Sprintf("example.com/annotation-%d", i)] = long(120)
	}
	now := time.Now().UTC()
	status := connection.Status{Phase: connection.PhaseFailed, Reason: "SecretIsOwned", Message: long(300), ObservedGeneration: 3,
		LastRequestID: "00000000-0000-0000-0000-000000000000", UpdatedAt: now, Seq: 42, Incarnation: long(26),
		LastFailure: &connection.Failure{Since: now, Time: now, Phase: connection.PhaseFailed, Reason: "SecretIsOwned",
			Message: long(300), Run: "sc-job-" + long(20), Generation: 3, RequestID: "00000000-0000-0000-0000-000000000000"}}
	for _, kind := range []string{"Secret", "ServiceAccount", "SecretProviderClass"} {
		ref := connection.ResourceRef{Kind: kind, Namespace: spec.Scope, Name: "sc-" + long(40) + "-secret"}
		status.Resources = append(status.Resources, ref)
		status.Owned = append(status.Owned, connection.OwnedObject{ResourceRef: ref, UID: "00000000-0000-0000-0000-000000000000"})
	}
	return spec, status
}

// typical is a connection as the e2e suite makes them: a workload-identity
// storage-blob connection, Succeeded, with its Secret and ServiceAccount.
func typical(name string) (connection.Spec, connection.Status) {
	spec := connection.Spec{Name: name, Scope: "team-a",
		TargetService: connection.TargetService{Type: "storage-blob",
			ID: "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-apps/providers/Microsoft.Storage/storageAccounts/acct"},
		AuthInfo: connection.AuthInfo{AuthType: "workloadIdentity", ClientID: "00000000-0000-0000-0000-000000000000"},
		Configurations: []connection.Configuration{
			{Name: "AZURE_STORAGEBLOB_RESOURCEENDPOINT", Value: "https://acct.blob.core.windows.net/"},
			{Name: "AZURE_STORAGEBLOB_CLIENTID", Value: "00000000-0000-0000-0000-000000000000"}}}
	now := time.Now().UTC()
	status := connection.Status{Phase: connection.PhaseSucceeded, Reason: "Rendered", Message: "rendered 2 objects",
		ObservedGeneration: 1, LastRequestID: "00000000-0000-0000-0000-000000000000", UpdatedAt: now, Seq: 3,
		Incarnation: strings.Repeat("x", 26)}
	for _, ref := range []connection.ResourceRef{{Kind: "Secret", Namespace: "team-a", Name: "sc-" + spec.ID() + "-secret"},
		{Kind: "ServiceAccount", Namespace: "team-a", Name: "sc-account-00000000-0000-0000-0000-000000000000"}} {
		status.Resources = append(status.Resources, ref)
		status.Owned = append(status.Owned, connection.OwnedObject{ResourceRef: ref, UID: "00000000-0000-0000-0000-000000000000"})
	}
	return spec, status
}

func viewSize(spec connection.Spec, status connection.Status) int {
	view, _ := json.Marshal(protocol.ConnectionView{Spec: spec, ObjectID: spec.ID(), Generation: 3, Status: status})
	return len(view)
}

// DefaultPageSize typical connections fit the page fill (half the message
// limit), so a default page ends by count; the largest typical ones end a
// page by bytes well before DefaultPageSize.
func TestDefaultPageSizeFitsTypicalConnections(t *testing.T) {
	typ := viewSize(typical(strings.Repeat("n", 30)))
	large := viewSize(largeTypical(strings.Repeat("N", connection.MaxNameLength)))
	t.Logf("typical view %d bytes, a default page of them %d bytes; largest typical view %d bytes, %d of them per page; limit %d",
		typ, protocol.DefaultPageSize*(typ+1), large, protocol.MaxMessageBytes/2/(large+1), protocol.MaxMessageBytes)
	assert.Less(t, protocol.DefaultPageSize*(typ+1), protocol.MaxMessageBytes/2)
	assert.Less(t, protocol.MaxMessageBytes/2/(large+1), protocol.DefaultPageSize)
}

// corrupt is a record ConfigMap whose spec is not JSON.
func corrupt(t testing.TB, name string) *corev1.ConfigMap {
	cm := stored(t, name, "team-a")
	cm.Data[record.KeySpec] = "{not json"
	return cm
}

// newer is a record a newer release wrote (a schema this build lacks).
func newer(t testing.TB, name string) *corev1.ConfigMap {
	cm := stored(t, name, "team-a")
	cm.Data[record.KeySchemaVersion] = fmt.Sprint(record.SchemaVersion + 1)
	return cm
}

// A record that does not decode is reported in its page's errors, with its
// object id and why, and never fails the list; it is in every namespace's
// list, since its namespace cannot be read. (Show reads through the API;
// the store's Get reports a corrupt record on its own.)
func TestUnreadableRecordsAreReportedNotFatal(t *testing.T) {
	c, _ := cached(t, stored(t, "alpha", "team-a"), corrupt(t, "broken"), newer(t, "future"), stored(t, "zeta", "team-b"))
	cp, _ := serveCache(t, c)
	ctx := context.Background()

	l, err := controlplane.List(ctx, cp, controlplane.ListOptions{Limit: 2})
	require.NoError(t, err)
	var listed []string
	for _, v := range l.Items {
		listed = append(listed, v.Spec.Name)
	}
	assert.Equal(t, []string{"alpha", "zeta"}, listed)
	require.Len(t, l.Errors, 2)
	reasons := map[string]string{}
	for _, e := range l.Errors {
		reasons[e.ObjectID] = e.Reason
		assert.NotEmpty(t, e.Message)
	}
	assert.Equal(t, map[string]string{"broken": protocol.RecordCorrupt, "future": protocol.RecordUnsupportedVersion}, reasons)
	assert.Equal(t, 2, l.Pages, "errors count towards the page size")

	inB, err := controlplane.List(ctx, cp, controlplane.ListOptions{Namespace: "team-b"})
	require.NoError(t, err)
	require.Len(t, inB.Items, 1)
	assert.Len(t, inB.Errors, 2, "an unreadable record is in every namespace's list")

}

// v010Reply and v010View are scctl v0.1.0's (commit ad02d28) reply and
// list item, copied rather than shared, so a change to today's types
// cannot hide a change of the wire shape.
type v010Reply struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Error      *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

type v010View struct {
	Spec       connection.Spec   `json:"spec"`
	ObjectID   string            `json:"objectId"`
	Generation int64             `json:"generation"`
	Deleting   bool              `json:"deleting,omitempty"`
	Status     connection.Status `json:"status"`
}

// v010List asks list as scctl v0.1.0 does, byte for byte.
func v010List(t testing.TB, nc *nats.Conn, namespace string) v010Reply {
	t.Helper()
	q := `{"apiVersion":"sc.v1","kind":"Query","verb":"list"}`
	if namespace != "" {
		q = `{"apiVersion":"sc.v1","kind":"Query","verb":"list","namespace":"` + namespace + `"}`
	}
	var r v010Reply
	require.NoError(t, json.Unmarshal(rawRequest(t, nc, "sc.v1."+cluster+".query.list", []byte(q)), &r))
	require.Equal(t, "sc.v1", r.APIVersion)
	require.Equal(t, "QueryReply", r.Kind)
	return r
}

// scctl v0.1.0 asks without a limit and still gets the bare array it
// decodes; a list too large for one reply is an error telling it to
// upgrade, not a reply the agent fails to publish; an unreadable record
// fails its list, as it did in v0.1.0, naming the way out.
func TestV010ScctlGetsTheBareArray(t *testing.T) {
	var cms []*corev1.ConfigMap
	for _, n := range []string{"zeta", "My_Blob", "alpha"} {
		cms = append(cms, stored(t, n, "default"))
	}
	cms = append(cms, stored(t, "other", "apps"))
	c, client := cached(t, objects(cms...)...)
	_, nc := serveCache(t, c)
	ctx := context.Background()

	r := v010List(t, nc, "default")
	require.Nil(t, r.Error)
	var views []v010View
	require.NoError(t, json.Unmarshal(r.Result, &views), "a bare array")
	require.Len(t, views, 3)
	assert.Equal(t, []string{"My_Blob", "alpha", "zeta"}, []string{views[0].Spec.Name, views[1].Spec.Name, views[2].Spec.Name})
	assert.Equal(t, connection.ObjectID("My_Blob"), views[0].ObjectID)
	assert.Equal(t, connection.PhaseSucceeded, views[0].Status.Phase)

	// Grow the list past one reply: ~1 KiB views, 300 of them.
	for _, n := range names(300, "bulk") {
		_, err := client.CoreV1().ConfigMaps(records.Namespace).Create(ctx, withValue(t, n, 1<<10), metav1.CreateOptions{})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { s, err := c.Snapshot(ctx); return err == nil && s.Len() == 304 }, 10*time.Second, 5*time.Millisecond)
	r = v010List(t, nc, "")
	require.NotNil(t, r.Error)
	assert.Equal(t, protocol.CodeTooLarge, r.Error.Code)
	assert.Contains(t, r.Error.Message, "upgrade scctl")
	assert.Contains(t, r.Error.Message, "--kube-namespace")
	require.Nil(t, v010List(t, nc, "apps").Error, "a narrower list still fits")

	_, err := client.CoreV1().ConfigMaps(records.Namespace).Create(ctx, corrupt(t, "broken"), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { s, err := c.Snapshot(ctx); return err == nil && s.Len() == 305 }, 10*time.Second, 5*time.Millisecond)
	r = v010List(t, nc, "apps")
	require.NotNil(t, r.Error)
	assert.Equal(t, protocol.CodeInternal, r.Error.Code)
	assert.Contains(t, r.Error.Message, "broken")
	assert.Contains(t, r.Error.Message, "upgrade scctl")
}

// Show and list-configuration read through the API, never the cache: the
// cache holds "old" at generation 1, the API has moved on to generation 2,
// and "fresh" is not cached at all. Both answers are the API's.
func TestShowAndListConfigurationReadThroughTheAPI(t *testing.T) {
	c, _ := cached(t, stored(t, "old", "team-a"))
	fresh := conn("fresh", "team-a")
	newer := records.Connection("old", connection.PhasePending, 2)
	newer.Spec.Scope = "team-a"
	cp, _ := serveWith(t, query.Options{Cache: c, Reader: reader{conns: map[string]connection.Connection{
		fresh.Spec.ID(): fresh, newer.Spec.ID(): newer}}})
	ctx := context.Background()
	var v protocol.ConnectionView
	require.NoError(t, cp.Query(ctx, protocol.Query{Verb: protocol.VerbShow, Connection: "fresh"}, &v))
	assert.Equal(t, "fresh", v.Spec.Name)
	require.NoError(t, cp.Query(ctx, protocol.Query{Verb: protocol.VerbShow, Connection: "old"}, &v))
	assert.Equal(t, int64(2), v.Generation, "show answered from the API, not the cached generation 1")
	assert.Equal(t, connection.PhasePending, v.Status.Phase)
	var items []protocol.ConfigurationItem
	require.NoError(t, cp.Query(ctx, protocol.Query{Verb: protocol.VerbListConfiguration, Connection: "fresh"}, &items))
	assert.Len(t, items, 2)
	err := cp.Query(ctx, protocol.Query{Verb: protocol.VerbShow, Connection: "nowhere"}, &v)
	var re *protocol.ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, protocol.CodeNotFound, re.Code)
}
