package jobrun

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/internal/testkit/fakerv"
	"github.com/sc-extension/sc-extension/internal/testkit/fakeuid"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

const (
	sys      = "sc-system"
	target   = "team-a"
	clientID = "00000000-0000-4000-8000-0000000000ab"
)

// The fake API server's watchers hold 100 events and panic when one more
// comes: a run's workers write statuses faster than its informer reads
// them in a test of 1,000 connections. An API server has no such limit.
func init() { watch.DefaultChanSize = 100_000 }

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	// watching is closed once a run watches the records: the fake API
	// server does not replay what changed between a list and a watch.
	watching chan struct{}
	store    *store.Store
	logs     *syncBuffer // written by the run's workers concurrently
	out      *bytes.Buffer
	creds    []string // every credential value handed to the store
	seq      int
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	return newFixtureOn(t, fake.NewClientset, objs...)
}

// newQuickFixture is newFixture on a fake without server-side apply's
// field management, which builds a REST mapper for every write: a test of
// 1,000 connections would spend 40 s in it. sc-job never applies
// server-side, so nothing it does depends on managedFields.
func newQuickFixture(t *testing.T, objs ...runtime.Object) *fixture {
	return newFixtureOn(t, fake.NewSimpleClientset, objs...)
}

func newFixtureOn(t *testing.T, clientset func(...runtime.Object) *fake.Clientset, objs ...runtime.Object) *fixture {
	objs = append(objs,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: sys}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: target}})
	// Creates get UIDs like the API server's: ownership rests on them. A
	// record's status write is refused when the record changed since it was
	// read, as on an API server: sc-job's writes rest on that.
	client := fakerv.Enforce(fakeuid.Assign(clientset(objs...)), "configmaps")
	f := &fixture{t: t, client: client, store: store.New(client, sys), logs: &syncBuffer{}, out: &bytes.Buffer{}, watching: make(chan struct{})}
	var once sync.Once
	client.PrependWatchReactor("configmaps", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := client.Tracker().Watch(a.GetResource(), a.GetNamespace())
		once.Do(func() { close(f.watching) })
		return true, w, err
	})
	t.Cleanup(f.assertNoCredentialLeak)
	return f
}

// watched returns once a run watches the records, so that a change the
// test makes next reaches it.
func (f *fixture) watched() {
	f.t.Helper()
	select {
	case <-f.watching:
	case <-time.After(10 * time.Second):
		f.t.Fatal("the run never watched the records")
	}
}

// ownActions are the client's actions without the informer's list and
// watch, which records() counts.
func (f *fixture) ownActions() []string {
	return fakeactions.Format(fakeactions.Without(f.client.Actions(), "list", "watch"))
}

// records counts the list and watch actions on the records.
func (f *fixture) records() (lists, watches int) {
	for _, a := range f.client.Actions() {
		if a.GetResource().Resource != "configmaps" || a.GetNamespace() != sys {
			continue
		}
		switch a.GetVerb() {
		case "list":
			lists++
		case "watch":
			watches++
		}
	}
	return lists, watches
}

// syncBuffer is a bytes.Buffer the run's workers may log to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (f *fixture) runner(mod ...func(*Config)) *Runner {
	cfg := Config{
		Client: f.client, Store: f.store, Namespace: sys, JobName: "sc-job", Instance: "sc-job-abcde",
		Log: zerolog.New(f.logs), Summary: f.out, Attempts: 1, Workers: 1,
		Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
	}
	for _, m := range mod {
		m(&cfg)
	}
	r, err := New(cfg)
	require.NoError(f.t, err)
	return r
}

func (f *fixture) cred() string {
	v := fmt.Sprintf("cred-VALUE-%d", rand.Uint64())
	f.creds = append(f.creds, v)
	return v
}

func (f *fixture) requestID() string {
	f.seq++
	return fmt.Sprintf("req-%d", f.seq)
}

// secretChange is a redis connection with one credential.
func (f *fixture) secretChange(name string) connection.Change {
	return connection.Change{
		RequestID: f.requestID(),
		Spec: connection.Spec{
			Name: name, Scope: target,
			TargetService:  connection.TargetService{Type: catalog.TargetRedis, ID: "/subscriptions/s/redis"},
			AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
			Configurations: []connection.Configuration{{Name: "AZURE_REDIS_CONNECTIONSTRING", Credential: true}},
		},
		Credentials: connection.Credentials{"AZURE_REDIS_CONNECTIONSTRING": f.cred()},
	}
}

func (f *fixture) wiChange(name string) connection.Change {
	return connection.Change{
		RequestID: f.requestID(),
		Spec: connection.Spec{
			Name: name, Scope: target,
			TargetService:  connection.TargetService{Type: catalog.TargetKeyVault, ID: "/subscriptions/s/kv"},
			AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: clientID},
			Configurations: []connection.Configuration{{Name: "AZURE_KEYVAULT_CLIENTID", Value: clientID}},
		},
	}
}

func (f *fixture) apply(ch connection.Change) connection.Connection {
	f.t.Helper()
	c, _, err := f.store.Apply(context.Background(), ch)
	require.NoError(f.t, err)
	return c
}

func (f *fixture) get(name string) connection.Connection {
	f.t.Helper()
	c, err := f.store.Get(context.Background(), connection.ObjectID(name))
	require.NoError(f.t, err)
	return c
}

// eventReasons lists "Type Reason: note" of every Event written.
func (f *fixture) events() []string {
	// In the order they were created: a List of the fake returns them in
	// name order, and Event names end in a random suffix.
	var out []string
	for _, a := range f.client.Actions() {
		c, ok := a.(k8stesting.CreateAction)
		if !ok || a.GetResource().Resource != "events" {
			continue
		}
		if e, ok := c.GetObject().(*eventsv1.Event); ok {
			out = append(out, e.Type+" "+e.Reason+" "+e.Regarding.Name+": "+e.Note)
		}
	}
	return out
}

// assertNoCredentialLeak scans everything a user or operator can read that
// is not a Secret: ConfigMaps, Events, Jobs, the log and the summary.
func (f *fixture) assertNoCredentialLeak() {
	ctx := context.Background()
	var haystack strings.Builder
	cms, _ := f.client.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	for _, cm := range cms.Items {
		fmt.Fprintf(&haystack, "%v %v %v\n", cm.Data, cm.Annotations, cm.Labels)
	}
	evs, _ := f.client.EventsV1().Events("").List(ctx, metav1.ListOptions{})
	for _, e := range evs.Items {
		fmt.Fprintf(&haystack, "%s %s %s\n", e.Reason, e.Note, e.Action)
	}
	jobs, _ := f.client.BatchV1().Jobs("").List(ctx, metav1.ListOptions{})
	for _, j := range jobs.Items {
		fmt.Fprintf(&haystack, "%v\n", j.Spec.Template.Spec.Containers)
	}
	haystack.WriteString(f.logs.String())
	haystack.WriteString(f.out.String())
	for _, v := range f.creds {
		if strings.Contains(haystack.String(), v) {
			f.t.Errorf("credential value %q found outside a Secret", v)
		}
	}
}

// offered waits until the running r has id queued as due work, or marked
// so while it is in flight, or taken says a worker took it already: the
// run cannot end before taking it, and takes it before any re-render. It
// runs in the run's workers (store hooks), so a failure is reported
// without stopping the goroutine, which would leave the run hanging.
func (f *fixture) offered(r *Runner, id string, taken ...func() bool) {
	f.t.Helper()
	assert.Eventually(f.t, func() bool {
		for _, tk := range taken {
			if tk() {
				return true
			}
		}
		l := r.drain.levels
		l.mu.Lock()
		defer l.mu.Unlock()
		if e, queued := l.where[id]; queued {
			return e.lvl == levelDue
		}
		lvl, marked := l.want[id]
		return marked && lvl == levelDue
	}, 10*time.Second, time.Millisecond, "%s never reached the run's queue as due work", id)
}

// once returns f to be called the first time only.
func once(f func()) func() {
	var o sync.Once
	return func() { o.Do(f) }
}

// deferred waits until the running r has left id to the next run (from
// a run's worker, like offered).
func (f *fixture) deferred(r *Runner, id string) {
	f.t.Helper()
	assert.Eventually(f.t, func() bool {
		r.drain.mu.Lock()
		defer r.drain.mu.Unlock()
		return r.drain.deferred[id]
	}, 10*time.Second, time.Millisecond, "%s was never deferred", id)
}
