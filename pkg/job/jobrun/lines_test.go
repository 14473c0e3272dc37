package jobrun

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
	"github.com/sc-extension/sc-extension/pkg/logging"
)

// textLog is sc-job's default log format at info level; lines() drops the
// timestamp each line starts with.
func textLog(t *testing.T, f *fixture) (zerolog.Logger, func() []string) {
	var buf bytes.Buffer
	log, err := logging.New(&buf, logging.FormatText)
	require.NoError(t, err)
	return log.Level(zerolog.InfoLevel), func() []string {
		_, _ = f.logs.Write(buf.Bytes()) // scanned for credential values at cleanup
		var lines []string
		for _, l := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
			_, rest, _ := strings.Cut(l, " ")
			lines = append(lines, rest)
		}
		buf.Reset()
		return lines
	}
}

func TestTextLogReadsAsOneLinePerStep(t *testing.T) {
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: target, Name: "sc-db2-secret"}}
	f := newFixture(t, foreign)
	f.apply(f.secretChange("db1"))
	f.apply(f.secretChange("db2"))
	log, lines := textLog(t, f)

	_, err := f.runner(func(c *Config) { c.Log = log }).Run(context.Background())
	require.ErrorIs(t, err, ErrFailed)
	ctx1 := `connection=db1 generation=1 namespace=team-a objectId=db1`
	ctx2 := `connection=db2 generation=1 namespace=team-a objectId=db2`
	assert.Equal(t, []string{
		`INF connection "db1": started to render generation 1 ` + ctx1 + ` phase=Pending requestId=req-1 step=claim`,
		`INF connection "db1": rendered Secret team-a/sc-db1-secret (created) ` +
			`connection=db1 generation=1 kind=Secret namespace=team-a object=team-a/sc-db1-secret objectId=db1 outcome=created requestId=req-1 step=apply`,
		`INF connection "db1": succeeded (1 created, 0 updated, 0 unchanged) ` + ctx1 + ` phase=Succeeded requestId=req-1 step=write-status writes=1`,
		`INF connection "db2": started to render generation 1 ` + ctx2 + ` phase=Pending requestId=req-2 step=claim`,
		`ERR connection "db2": failed: SecretIsOwned: Secret team-a/sc-db2-secret exists and is not managed by sc-extension attempt=1 ` + ctx2 +
			` phase=Failed reason=SecretIsOwned requestId=req-2 retryAfter=2026-01-02T03:05:05Z step=apply-secret`,
	}, lines())
	assert.Equal(t, `sc-job: 1 connection rendered, 0 deleted, 1 failed: connection "db2" failed at step apply-secret: `+
		`Secret team-a/sc-db2-secret exists and is not managed by sc-extension (ErrSecretIsOwned)`+"\n", f.out.String(),
		"the plain summary is the last line")

	require.NoError(t, f.client.CoreV1().Secrets(target).Delete(context.Background(), foreign.Name, metav1.DeleteOptions{}))
	_, err = f.runner(func(c *Config) { c.Log = log; c.RenderAll = true }).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{
		`INF connection "db1": started to re-render generation 1 (Succeeded) ` + ctx1 + ` phase=Succeeded requestId=req-1 step=claim`,
		`INF connection "db1": rendered Secret team-a/sc-db1-secret (unchanged) ` +
			`connection=db1 generation=1 kind=Secret namespace=team-a object=team-a/sc-db1-secret objectId=db1 outcome=unchanged requestId=req-1 step=apply`,
		`INF connection "db1": unchanged (1 objects as rendered); nothing written ` + ctx1 + ` phase=Succeeded requestId=req-1 step=write-status writes=0`,
		`INF connection "db2": still failing since 2026-01-02T03:04:05Z: SecretIsOwned; retrying (attempt 2) attempt=2 ` +
			`connection=db2 failingSince=2026-01-02T03:04:05Z generation=1 namespace=team-a objectId=db2 reason=SecretIsOwned requestId=req-2 step=claim`,
		`INF connection "db2": started to re-render generation 1 (Failed) ` + ctx2 + ` phase=Failed requestId=req-2 step=claim`,
		`INF connection "db2": rendered Secret team-a/sc-db2-secret (created) ` +
			`connection=db2 generation=1 kind=Secret namespace=team-a object=team-a/sc-db2-secret objectId=db2 outcome=created requestId=req-2 step=apply`,
		`INF connection "db2": succeeded (1 created, 0 updated, 0 unchanged) ` + ctx2 + ` phase=Succeeded requestId=req-2 step=write-status writes=1`,
	}, lines())
}

func TestJSONLogCarriesTheSummaryAndStableFields(t *testing.T) {
	f := newFixture(t)
	f.apply(f.secretChange("db1"))
	var buf bytes.Buffer
	log, err := logging.New(&buf, logging.FormatJSON)
	require.NoError(t, err)
	_, err = f.runner(func(c *Config) { c.Log = log; c.Summary = nil }).Run(context.Background())
	require.NoError(t, err)
	_, _ = f.logs.Write(buf.Bytes())

	var entries []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "every line is JSON: %q", l)
		delete(m, "time")
		entries = append(entries, m)
	}
	require.NotEmpty(t, entries)
	assert.Contains(t, entries, map[string]any{
		"level": "info", "message": `connection "db1": rendered Secret team-a/sc-db1-secret (created)`,
		"connection": "db1", "objectId": "db1", "namespace": "team-a", "generation": float64(1), "requestId": "req-1",
		"step": "apply", "kind": "Secret", "object": "team-a/sc-db1-secret", "outcome": "created",
	})
	last := entries[len(entries)-1]
	assert.Equal(t, "summary", last["step"])
	assert.Equal(t, "sc-job: 1 connection rendered, 0 deleted, 0 failed", last["message"])
	assert.Equal(t, float64(1), last["rendered"])
	assert.Empty(t, f.out.String(), "no plain line in JSON mode")
}

func TestDeleteLogsEachObjectRemovedOrKept(t *testing.T) {
	f := newFixture(t)
	f.apply(f.wiChange("kv1"))
	f.apply(f.wiChange("kv2"))
	_, err := f.runner().Run(context.Background())
	require.NoError(t, err)
	f.apply(connection.Change{RequestID: f.requestID(), Spec: f.wiChange("kv1").Spec, Delete: true, DeleteResources: true})
	f.logs.Reset()
	_, err = f.runner().Run(context.Background())
	require.NoError(t, err)

	var msgs []string
	for _, l := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		msgs = append(msgs, m["message"].(string))
	}
	sa := connection.ServiceAccountName(clientID)
	assert.Equal(t, []string{
		`connection "kv1": started to delete generation 1`,
		`connection "kv1": delete Secret team-a/sc-kv1-secret (deleted)`,
		`connection "kv1": delete ServiceAccount team-a/` + sa + ` (kept)`,
		`connection "kv1": deleted with its rendered objects: 1 deleted, 1 kept (shared, gone or not ours)`,
	}, msgs)
}
