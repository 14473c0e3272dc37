package launcher

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/kube/record"
)

// A Pending record a newer release wrote is no work for this build's
// sc-job (it skips it): no Job is started for it, and the skip is logged
// once per look.
func TestRecordOfANewerSchemaStartsNoJob(t *testing.T) {
	newer := recordCM(t, "newer", connection.PhasePending, 1)
	newer.Data[record.KeySchemaVersion] = "2"
	f := newFixture(t, newer, recordCM(t, "good", connection.PhaseSucceeded, 1))
	f.process()
	assert.Empty(t, f.actions())
	assert.Equal(t, 1, strings.Count(f.logs.String(), "skipping a record written by a newer release"), f.logs.String())
	assert.Contains(t, f.logs.String(), "schema version 2, this build supports up to 1")
}
