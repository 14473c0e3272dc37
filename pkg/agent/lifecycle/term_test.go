package lifecycle_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sc-extension/sc-extension/pkg/agent/lifecycle"
)

// SharedInformerFactory is what the agent hands a term.
var _ lifecycle.Informers = informers.SharedInformerFactory(nil)

// fakeInformers journals Start and Shutdown and reports synced as told.
type fakeInformers struct {
	j      *journal
	synced bool
}

func (f fakeInformers) Start(<-chan struct{}) { f.j.add("informers started") }
func (f fakeInformers) WaitForCacheSync(<-chan struct{}) map[reflect.Type]bool {
	return map[reflect.Type]bool{reflect.TypeFor[corev1.ConfigMap](): f.synced}
}
func (f fakeInformers) Shutdown() { f.j.add("informers shut down") }

// controller is a controller that runs until stopped and journals its end.
func controller(j *journal, name string, started chan<- context.Context) lifecycle.Controller {
	return lifecycle.Controller{Name: name, Run: service(j, name, started)}
}

// The order the shutdown guarantee rests on: intake stops while the
// controllers still run, then the controllers, then the informers.
func TestTermStopsIntakeFirstThenControllersThenInformers(t *testing.T) {
	var j journal
	ctrlCtxs := make(chan context.Context, 2)
	synced := make(chan context.Context, 1)
	intakeRunning := make(chan struct{})
	ctx, loseLease := context.WithCancel(context.Background())
	term := lifecycle.Term{
		Informers:   []lifecycle.Informers{fakeInformers{j: &j, synced: true}},
		Controllers: []lifecycle.Controller{controller(&j, "launcher", ctrlCtxs), controller(&j, "drift", ctrlCtxs)},
		Synced: func(ctx context.Context) {
			synced <- ctx
			<-ctx.Done()
			j.add("heartbeat stopped")
		},
		Log: zerolog.Nop(),
	}
	var ctrl []context.Context
	term.Intake = func(ctx context.Context) error {
		close(intakeRunning)
		<-ctx.Done()
		// A request in flight is finished now: the controllers must still run.
		for _, c := range ctrl {
			if c.Err() != nil {
				j.add("controller stopped before intake")
			}
		}
		j.add("intake stopped")
		return nil
	}
	result := make(chan error, 1)
	go func() { result <- term.Run(ctx) }()
	ctrl = append(ctrl, <-ctrlCtxs, <-ctrlCtxs)
	heartbeatCtx := <-synced
	<-intakeRunning

	loseLease()
	require.NoError(t, <-result)
	assert.Error(t, heartbeatCtx.Err())
	got := j.all()
	require.Len(t, got, 6, "%q", got)
	assert.Equal(t, []string{"informers started", "intake stopped"}, got[:2])
	middle := slices.Clone(got[2:5])
	slices.Sort(middle)
	assert.Equal(t, []string{"drift stopped", "heartbeat stopped", "launcher stopped"}, middle)
	assert.Equal(t, "informers shut down", got[5])
}

// A failing controller ends the term the same orderly way and is the
// term's outcome, naming the controller.
func TestTermEndsWhenAControllerFails(t *testing.T) {
	var j journal
	boom := errors.New("watch jobs: forbidden")
	term := lifecycle.Term{
		Informers: []lifecycle.Informers{fakeInformers{j: &j, synced: true}},
		Controllers: []lifecycle.Controller{controller(&j, "drift", nil),
			{Name: "launcher", Run: func(context.Context) error { return boom }}},
		Intake: service(&j, "intake", nil),
		Log:    zerolog.Nop(),
	}
	err := term.Run(context.Background())
	require.ErrorIs(t, err, boom)
	assert.Contains(t, err.Error(), "launcher: ")
	assert.Equal(t, []string{"informers started", "intake stopped", "drift stopped", "informers shut down"}, j.all())
}

// A leader whose intake has stopped must give up the term rather than hold
// the Lease without consuming requests.
func TestTermEndsWhenIntakeStopsOnItsOwn(t *testing.T) {
	boom := errors.New("consumer: stream not found")
	for name, ret := range map[string]error{"with an error": boom, "without an error": nil} {
		t.Run(name, func(t *testing.T) {
			var j journal
			term := lifecycle.Term{
				Controllers: []lifecycle.Controller{controller(&j, "drift", nil)},
				Intake:      func(context.Context) error { return ret },
				Log:         zerolog.Nop(),
			}
			err := term.Run(context.Background())
			require.ErrorIs(t, err, lifecycle.ErrIntakeExited)
			if ret != nil {
				assert.ErrorIs(t, err, boom)
			}
			assert.Equal(t, []string{"drift stopped"}, j.all())
		})
	}
}

// Informers that never sync never start the heartbeat (it would report a
// connection count from an empty cache).
func TestTermWithoutSyncNeverCallsSynced(t *testing.T) {
	var j journal
	ctx, cancel := context.WithCancel(context.Background())
	term := lifecycle.Term{
		Informers: []lifecycle.Informers{fakeInformers{j: &j, synced: false}},
		Intake:    func(context.Context) error { cancel(); return nil },
		Synced:    func(context.Context) { j.add("synced") },
		Log:       zerolog.Nop(),
	}
	require.NoError(t, term.Run(ctx))
	assert.Equal(t, []string{"informers started", "informers shut down"}, j.all())
}

// With a real informer factory, Synced sees a filled cache.
func TestTermSyncedSeesTheCache(t *testing.T) {
	client := fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "sc-system", Name: "sc-conn-a"}})
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace("sc-system"))
	cms := factory.Core().V1().ConfigMaps()
	cms.Informer() // registered before the term starts the factory
	ctx, cancel := context.WithCancel(context.Background())
	var seen int
	term := lifecycle.Term{
		Informers: []lifecycle.Informers{factory},
		Synced: func(context.Context) {
			all, err := cms.Lister().List(labels.Everything())
			require.NoError(t, err)
			seen = len(all)
			cancel()
		},
		Intake: func(ctx context.Context) error { <-ctx.Done(); return nil },
		Log:    zerolog.Nop(),
	}
	require.NoError(t, term.Run(ctx))
	assert.Equal(t, 1, seen)
}
