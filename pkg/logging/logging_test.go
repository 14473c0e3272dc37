package logging

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJSONLinesUseStableFieldNames(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, FormatJSON)
	require.NoError(t, err)
	log.Info().Str("connection", "db1").Msg("rendered")
	log.Warn().Msg("second")

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	require.Len(t, lines, 2, "one JSON object per line")
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &got))
	assert.Equal(t, "info", got["level"])
	assert.Equal(t, "rendered", got["message"])
	assert.Equal(t, "db1", got["connection"])
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d`, got["time"])
}

func TestTextLineShape(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, FormatText)
	require.NoError(t, err)
	log.Info().Str("step", "apply").Msg(`connection "db1": rendered Secret team-a/sc-db1-secret (created)`)
	log.Error().Str("step", "apply").Msg("broken")

	want := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d) INF connection "db1": rendered Secret team-a/sc-db1-secret \(created\) step=apply
\S+ ERR broken step=apply
$`)
	assert.Regexp(t, want, buf.String())
	assert.NotContains(t, buf.String(), "\x1b[", "no colours when not writing to a terminal")
}

func TestTextHidesNamedFieldsJSONKeepsThem(t *testing.T) {
	var text, js bytes.Buffer
	tl, err := New(&text, FormatText, "connection")
	require.NoError(t, err)
	tl.Info().Str("connection", "db1").Str("reason", "Retrying").Msg("m")
	assert.Regexp(t, `^\S+ INF m reason=Retrying\n$`, text.String())
	jl, err := New(&js, FormatJSON, "connection")
	require.NoError(t, err)
	jl.Info().Str("connection", "db1").Msg("m")
	assert.Contains(t, js.String(), `"connection":"db1"`)
}

func TestUnknownFormat(t *testing.T) {
	_, err := New(&bytes.Buffer{}, "yaml")
	require.ErrorIs(t, err, ErrFormat)
	assert.Equal(t, `unknown log format "yaml" (want json or text)`, err.Error())
}
