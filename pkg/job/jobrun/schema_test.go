package jobrun

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// A record a newer release wrote is skipped: not rendered, not written,
// not counted as failed or corrupt, and the run still succeeds (and, with
// RenderAll, still marks and renders the others).
func TestRunSkipsARecordOfANewerSchema(t *testing.T) {
	for _, renderAll := range []bool{false, true} {
		t.Run(map[bool]string{false: "pending", true: "render-all"}[renderAll], func(t *testing.T) {
			f := newFixture(t, ownJob())
			ctx := context.Background()
			f.apply(f.secretChange("db1"))
			newer := f.apply(f.secretChange("db2"))
			cms := f.client.CoreV1().ConfigMaps(sys)
			cm, err := cms.Get(ctx, connection.ConfigMapName(newer.Spec.ID()), metav1.GetOptions{})
			require.NoError(t, err)
			cm.Data[record.KeySchemaVersion] = "2"
			cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
			require.NoError(t, err)
			f.client.ClearActions()

			sum, err := f.runner(func(c *Config) { c.RenderAll = renderAll }).Run(ctx)
			require.NoError(t, err)
			assert.Equal(t, 1, sum.Rendered)
			assert.Empty(t, sum.Failures)
			assert.Zero(t, sum.Corrupt)
			assert.Equal(t, "sc-job: 1 connection rendered, 0 deleted, 0 failed\n", f.out.String())
			for _, a := range fakeactions.Of(f.client) {
				assert.NotContains(t, a, cm.Name, "the newer record is neither read alone nor written")
			}
			got, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
			require.NoError(t, err)
			assert.Equal(t, cm, got)
			assert.Contains(t, f.logs.String(), "skipped: newer schema: connection record db2 was written by a newer release")
			assert.Equal(t, connection.PhaseSucceeded, f.get("db1").Status.Phase)
			assert.Contains(t, fakeactions.Writes(f.client.Actions()), "delete jobs sc-system/sc-job", "the run succeeded")
			assert.False(t, strings.Contains(f.logs.String(), `"level":"error"`), f.logs.String())
		})
	}
}
