package statuswatch

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/internal/testkit/fakeactions"
	"github.com/sc-extension/sc-extension/internal/testkit/records"
	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// Records a newer release wrote are skipped with one log line each: no
// status is published for them (this build cannot say what they hold) and
// a removed one is not released, since its Deleted event and its release
// are that release's to do.
func TestRecordsOfANewerSchemaAreSkipped(t *testing.T) {
	removed := terminating(t)
	removed.Data[record.KeySchemaVersion] = "2"
	live := records.ConfigMap(t, conn("blob2", connection.PhaseSucceeded, 1, "req-1"))
	live.Data[record.KeySchemaVersion] = "2"
	e := start(t, nil, removed, live, records.ConfigMap(t, conn("blob3", connection.PhaseSucceeded, 1, "req-1")))

	assert.Equal(t, "blob3", e.next().Connection)
	require.Eventually(t, func() bool {
		logs := e.logs.String()
		return strings.Contains(logs, "removed record written by a newer release; skipped") &&
			strings.Contains(logs, "record written by a newer release; skipped, not publishing")
	}, 10*time.Second, 5*time.Millisecond, "both skips logged")
	e.stop()

	assert.EqualValues(t, 1, e.streamed(), "only blob3's status")
	assert.Empty(t, fakeactions.Writes(e.client.Actions()), "neither written nor released")
	got, err := e.client.CoreV1().ConfigMaps(ns).Get(context.Background(), removed.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{record.Finalizer}, got.Finalizers)
	assert.Equal(t, 1, strings.Count(e.logs.String(), "removed record written by a newer release"), "one line each")
}
