//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sc-extension/sc-extension/pkg/core/catalog"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/wire/protocol"
)

// rotationBench is issue 11's figure: a credential rotated -> every pod of
// a bound 3-replica Deployment running the new value, next to what a bare
// `kubectl rollout restart` (its template patch) takes in the same run.
type rotationBench struct{ rotation, restart []time.Duration }

// benchRotation alternates runs of both on one Deployment. The release
// runs with job.restartWindow=1s (TestBenchReport), so runs seconds apart
// are not held back by the 30 s default window; the 2 s settle is paid.
func (e *env) benchRotation(t *testing.T, runs int) rotationBench {
	t.Helper()
	ctx := context.Background()
	w := &workload{t: t, e: e, ns: e.targetNamespace(t), names: map[string]string{}, replicas: 3}
	w.create(ctx)
	spec, creds := buildSpec(t, uniq("rot"), w.ns, catalog.TargetStorageBlob, catalog.AuthSecret, blobID)
	spec.Binding = &connection.Binding{Workloads: []connection.Workload{{Kind: connection.WorkloadDeployment, Name: boundApp}}}
	w.apply(protocol.OpCreate, spec, creds)
	w.awaitSettled()

	var b rotationBench
	for i := range runs {
		gen := w.get().Generation
		start := time.Now()
		patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
		_, err := e.cluster.Clientset.AppsV1().Deployments(w.ns).Patch(ctx, boundApp, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "kubectl-rollout"})
		require.NoError(t, err)
		w.awaitRolledOutPast(gen, fmt.Sprintf("rollout restart %d", i))
		b.restart = append(b.restart, time.Since(start))

		gen = w.get().Generation
		creds = rotated(creds)
		start = time.Now()
		_, err = e.cp.Update(ctx, spec, creds)
		require.NoError(t, err)
		w.awaitRolledOutPast(gen, fmt.Sprintf("rotation %d", i))
		b.rotation = append(b.rotation, time.Since(start))
	}
	return b
}

// awaitRolledOutPast waits until the Deployment's pod template changed
// since generation gen and every replica runs the new one.
func (w *workload) awaitRolledOutPast(gen int64, what string) {
	w.t.Helper()
	eventually(w.t, opTimeout, what, func(ctx context.Context) (bool, error) {
		d, err := w.e.cluster.Clientset.AppsV1().Deployments(w.ns).Get(ctx, boundApp, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Generation > gen && w.rolledOut(ctx), nil
	})
}

func (b rotationBench) rows(rep *report, runs int) {
	rep.add(fmt.Sprintf("credential rotated -> all 3 pods of a bound Deployment run the new value, p50 (%d runs; 2 s settle, restartWindow 1s)", runs),
		percentile(b.rotation, 50), "kubectl rollout restart -> all 3 pods new, p50", percentile(b.restart, 50))
}
