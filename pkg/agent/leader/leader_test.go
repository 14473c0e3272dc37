package leader

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/sc-extension/sc-extension/pkg/agent/health"
)

func fastConfig(client kubernetes.Interface, id string) Config {
	return Config{
		Client: client, Namespace: "sc-system", Identity: id,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
		Log: zerolog.Nop(),
	}
}

func holder(t *testing.T, ctx context.Context, client kubernetes.Interface) string {
	t.Helper()
	l, err := client.CoordinationV1().Leases("sc-system").Get(ctx, DefaultLeaseName, metav1.GetOptions{})
	require.NoError(t, err)
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

// The Lease is released only after lead has returned: otherwise a second
// replica could start leading while this one is still writing.
func TestLeadStopsBeforeLeaseIsReleased(t *testing.T) {
	client := fake.NewClientset()
	cfg := fastConfig(client, "agent-a")
	cfg.Metrics = health.NewMetrics()
	ctx, cancel := context.WithCancel(context.Background())

	leading := make(chan struct{})
	holderWhenStopping := make(chan string, 1)
	runDone := make(chan error, 1)
	go func() {
		runDone <- Run(ctx, cfg, func(leadCtx context.Context) {
			close(leading)
			<-leadCtx.Done()
			l, err := client.CoordinationV1().Leases("sc-system").Get(context.Background(), DefaultLeaseName, metav1.GetOptions{})
			if err != nil {
				holderWhenStopping <- "error: " + err.Error()
				return
			}
			holderWhenStopping <- ptr.Deref(l.Spec.HolderIdentity, "")
		})
	}()

	<-leading
	assert.Equal(t, "agent-a", holder(t, ctx, client))
	assert.Equal(t, 1.0, leaderGauge(t, cfg.Metrics), "leader gauge set while leading")

	cancel()
	require.NoError(t, <-runDone)
	assert.Equal(t, "agent-a", <-holderWhenStopping, "lead saw its Lease still held while stopping")
	assert.Equal(t, "", holder(t, context.Background(), client), "Lease released on cancel")
	assert.Equal(t, 0.0, leaderGauge(t, cfg.Metrics))
}

func TestCancelBeforeLeadingReturns(t *testing.T) {
	client := fake.NewClientset()
	// Someone else holds a long Lease: this replica never leads.
	now := metav1.NewMicroTime(time.Now())
	_, err := client.CoordinationV1().Leases("sc-system").Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sc-system", Name: DefaultLeaseName},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("agent-b"), LeaseDurationSeconds: ptr.To[int32](3600),
			AcquireTime: &now, RenewTime: &now},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() {
		runDone <- Run(ctx, fastConfig(client, "agent-a"), func(context.Context) { t.Error("must not lead") })
	}()
	// Wait until agent-a has tried (and failed) to take the Lease.
	require.NoError(t, wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 5*time.Second, true,
		func(context.Context) (bool, error) {
			for _, a := range client.Actions() {
				if a.GetVerb() == "get" && a.GetResource().Resource == "leases" {
					return true, nil
				}
			}
			return false, nil
		}))
	cancel()
	require.NoError(t, <-runDone)
	assert.Equal(t, "agent-b", holder(t, context.Background(), client), "a non-leader never touches the holder's Lease")
}

func TestRunRejectsIncompleteConfig(t *testing.T) {
	err := Run(context.Background(), Config{Namespace: "sc-system"}, func(context.Context) {})
	require.ErrorIs(t, err, ErrConfig)
	err = Run(context.Background(), Config{Client: fake.NewClientset(), Namespace: "sc-system", Identity: "a",
		LeaseDuration: time.Second, RenewDeadline: 2 * time.Second}, func(context.Context) {})
	require.ErrorIs(t, err, ErrConfig, "renew deadline longer than the lease")
}

func leaderGauge(t *testing.T, m *health.Metrics) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == "sc_agent_leader" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("sc_agent_leader not exported")
	return 0
}
