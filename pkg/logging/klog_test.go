package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2"
)

// routed points klog at a fresh JSON logger of level for one test and
// captures os.Stderr, where klog would write on its own.
func routed(t *testing.T, level zerolog.Level) (lines func() []map[string]any, stderr func() string) {
	t.Helper()
	var buf bytes.Buffer
	log, err := New(&buf, FormatJSON)
	require.NoError(t, err)
	RouteKlog(log.Level(level))

	f, err := os.CreateTemp(t.TempDir(), "stderr")
	require.NoError(t, err)
	saved := os.Stderr
	os.Stderr = f
	t.Cleanup(func() {
		os.Stderr = saved
		klog.ClearLogger()
		RouteKlog(zerolog.Nop().Level(zerolog.InfoLevel)) // verbosity back to 0
		klog.ClearLogger()
	})
	lines = func() []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &m), "line %q", l)
			delete(m, "time")
			out = append(out, m)
		}
		return out
	}
	stderr = func() string {
		b, err := os.ReadFile(f.Name())
		require.NoError(t, err)
		return string(b)
	}
	return lines, stderr
}

func TestKlogInfoSAndErrorSBecomeOneJSONLineEach(t *testing.T) {
	lines, stderr := routed(t, zerolog.InfoLevel)
	klog.InfoS("Starting reflector", "type", "*v1.ConfigMap", "pod", klog.KRef("sc-system", "sc-agent-0"))
	klog.ErrorS(errors.New("connection refused"), "Failed to watch", "resource", "configmaps")

	assert.Equal(t, []map[string]any{
		{"level": "info", "message": "Starting reflector", "type": "*v1.ConfigMap",
			"pod": map[string]any{"name": "sc-agent-0", "namespace": "sc-system"}},
		{"level": "error", "message": "Failed to watch", "error": "connection refused", "resource": "configmaps"},
	}, lines())
	assert.Empty(t, stderr(), "klog writes no second format of its own")
}

func TestKlogUnstructuredCallsLoseTheKlogHeader(t *testing.T) {
	lines, stderr := routed(t, zerolog.InfoLevel)
	klog.Infof("leader election: %s became leader", "sc-agent-0")
	klog.Errorf("observed a panic: %v", "boom")
	assert.Equal(t, []map[string]any{
		{"level": "info", "message": "leader election: sc-agent-0 became leader"},
		{"level": "error", "message": "observed a panic: boom"},
	}, lines())
	assert.Empty(t, stderr())
}

func TestKlogVerbosityFollowsTheLevel(t *testing.T) {
	for _, tc := range []struct {
		level zerolog.Level
		want  []string // messages that appear, as "level message"
	}{
		{zerolog.InfoLevel, []string{"info v0"}},
		{zerolog.DebugLevel, []string{"info v0", "debug v1", "debug v3"}},
		{zerolog.TraceLevel, []string{"info v0", "debug v1", "debug v3", "trace v4", "trace v5"}},
	} {
		t.Run(tc.level.String(), func(t *testing.T) {
			lines, _ := routed(t, tc.level)
			for _, v := range []klog.Level{0, 1, 3, 4, 5, 6, 8} {
				klog.V(v).InfoS(fmt.Sprintf("v%d", v))
			}
			var got []string
			for _, l := range lines() {
				got = append(got, l["level"].(string)+" "+l["message"].(string))
			}
			assert.Equal(t, tc.want, got, "V(6) and up never reach the log: client-go logs requests and bodies there")
		})
	}
}

func TestContextualLoggersAreRoutedWithNamesAndValues(t *testing.T) {
	lines, _ := routed(t, zerolog.DebugLevel)
	logger := klog.FromContext(context.Background()).WithName("leaderelection").WithValues("lease", "sc-agent")
	logger.V(1).Info("renewed", "odd")
	logger.V(9).Info("never")
	assert.Equal(t, []map[string]any{
		{"level": "debug", "message": "renewed", "logger": "leaderelection", "lease": "sc-agent", "odd": "(MISSING)"},
	}, lines())
}
