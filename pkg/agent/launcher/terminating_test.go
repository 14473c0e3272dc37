package launcher

import (
	"testing"

	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

// A removed record waits, terminating, for its Deleted event (statuswatch).
// Its status still says what sc-job last wrote (Running, mid-deletion), yet
// it is no work: launching for it would start sc-job again and again while
// NATS is unreachable, each run finding nothing to do.
func TestTerminatingRecordStartsNoJob(t *testing.T) {
	removed := recordCM(t, "gone", connection.PhaseRunning, 2)
	removed.DeletionTimestamp = &metav1.Time{Time: epoch}
	f := newFixture(t, removed)
	f.process()
	assert.Empty(t, f.actions())
}
