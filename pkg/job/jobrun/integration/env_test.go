//go:build integration

// Package jobrun_integration runs the store, apply and a whole sc-job run
// against a real API server (etcd + kube-apiserver + kube-controller-manager
// from e2e/testbed): real validation of every object written, real
// resourceVersion conflicts, real Events.
package jobrun_integration

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/sc-extension/sc-extension/internal/testkit/kubetest"
	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/job/jobrun"
	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }

const clientID = "00000000-0000-4000-8000-0000000000ab"

type env struct {
	t       testing.TB
	ctx     context.Context
	client  kubernetes.Interface
	dynamic dynamic.Interface
	sys     string // records' namespace
	target  string // where connections render
	store   *store.Store
	logs    *syncBuffer
	out     *syncBuffer

	mu    sync.Mutex
	creds []string
	seq   int
}

// syncBuffer is written by the run's workers concurrently.
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

func setup(t testing.TB) *env {
	t.Helper()
	k := kubetest.New(t, kubetest.QPS(200, 400))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, client: k.Clientset, dynamic: k.Dynamic, logs: &syncBuffer{}, out: &syncBuffer{}}
	e.sys = kubetest.Namespace(t, kubetest.Prefix("sc-system-"))
	e.target = kubetest.Namespace(t, kubetest.Prefix("team-"))
	e.store = store.New(e.client, e.sys)
	t.Cleanup(e.assertNoCredentialLeak)
	return e
}

func (e *env) runner(mod ...func(*jobrun.Config)) *jobrun.Runner {
	cfg := jobrun.Config{
		Client: e.client, Dynamic: e.dynamic, Store: e.store, Namespace: e.sys, JobName: "sc-job",
		Instance: "sc-job-test", Log: zerolog.New(e.logs), Summary: e.out, Workers: 8,
	}
	for _, m := range mod {
		m(&cfg)
	}
	r, err := jobrun.New(cfg)
	require.NoError(e.t, err)
	return r
}

func (e *env) cred() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := fmt.Sprintf("cred-VALUE-%d", rand.Uint64())
	e.creds = append(e.creds, v)
	return v
}

func (e *env) requestID() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	return fmt.Sprintf("req-%d-%d", e.seq, rand.Uint32())
}

func (e *env) secretChange(name string) connection.Change {
	return connection.Change{
		RequestID: e.requestID(),
		Spec: connection.Spec{
			Name: name, Scope: e.target,
			TargetService:  connection.TargetService{Type: catalog.TargetRedis, ID: "/subscriptions/s/redis"},
			AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthSecret},
			Configurations: []connection.Configuration{{Name: "AZURE_REDIS_CONNECTIONSTRING", Credential: true}},
		},
		Credentials: connection.Credentials{"AZURE_REDIS_CONNECTIONSTRING": e.cred()},
	}
}

func (e *env) wiChange(name string) connection.Change {
	return connection.Change{
		RequestID: e.requestID(),
		Spec: connection.Spec{
			Name: name, Scope: e.target,
			TargetService:  connection.TargetService{Type: catalog.TargetKeyVault, ID: "/subscriptions/s/kv"},
			AuthInfo:       connection.AuthInfo{AuthType: catalog.AuthWorkloadIdentity, ClientID: clientID},
			Configurations: []connection.Configuration{{Name: "AZURE_KEYVAULT_CLIENTID", Value: clientID}},
		},
	}
}

func (e *env) apply(ch connection.Change) connection.Connection {
	e.t.Helper()
	c, _, err := e.store.Apply(e.ctx, ch)
	require.NoError(e.t, err)
	return c
}

func (e *env) get(name string) connection.Connection {
	e.t.Helper()
	c, err := e.store.Get(e.ctx, connection.ObjectID(name))
	require.NoError(e.t, err)
	return c
}

// assertNoCredentialLeak scans every ConfigMap and Event of the test's
// namespaces, and the run's log and summary, for the credential values used.
func (e *env) assertNoCredentialLeak() {
	ctx := context.Background()
	var hay strings.Builder
	for _, ns := range []string{e.sys, e.target} {
		cms, err := e.client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, cm := range cms.Items {
				fmt.Fprintf(&hay, "%v %v %v\n", cm.Data, cm.Annotations, cm.Labels)
			}
		}
		evs, err := e.client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, ev := range evs.Items {
				fmt.Fprintf(&hay, "%s %s %s\n", ev.Reason, ev.Note, ev.Action)
			}
		}
		old, err := e.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, ev := range old.Items {
				fmt.Fprintf(&hay, "%s %s\n", ev.Reason, ev.Message)
			}
		}
	}
	hay.WriteString(e.logs.String())
	hay.WriteString(e.out.String())
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, v := range e.creds {
		if strings.Contains(hay.String(), v) {
			e.t.Errorf("credential value %q found in a ConfigMap, Event or log", v)
		}
	}
}
