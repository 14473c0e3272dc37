package logging

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
	"github.com/rs/zerolog"
	"k8s.io/klog/v2"
)

// MaxKlogVerbosity is the most detail client-go may log, whatever the level:
// from V(6) its round trippers log request URLs and headers, from V(8)
// request and response bodies, and a body may hold a Secret's data.
const MaxKlogVerbosity = 5

// RouteKlog sends everything klog logs (client-go's reflectors, leader
// election, runtime.HandleCrash, contextual loggers from klog.FromContext)
// into log, as log's format. klog then writes nothing of its own to stderr.
// klog's verbosity follows log's level: info lets V(0) through, debug up to
// V(3), trace up to MaxKlogVerbosity.
func RouteKlog(log zerolog.Logger) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	// klog gates klog.V(n) calls itself before they reach the sink.
	_ = fs.Set("v", strconv.Itoa(klogVerbosity(log.GetLevel())))
	klog.SetLoggerWithOptions(logr.New(&sink{log: log}), klog.ContextualLogger(true))
}

// klogVerbosity is the highest V level whose lines log's level would show.
func klogVerbosity(l zerolog.Level) int {
	switch {
	case l <= zerolog.TraceLevel:
		return MaxKlogVerbosity
	case l == zerolog.DebugLevel:
		return 3
	default:
		return 0
	}
}

// levelOf maps a logr verbosity to a zerolog level: V(0) is info, V(1)-V(3)
// debug, and anything more detailed trace.
func levelOf(v int) zerolog.Level {
	switch {
	case v <= 0:
		return zerolog.InfoLevel
	case v <= 3:
		return zerolog.DebugLevel
	default:
		return zerolog.TraceLevel
	}
}

// sink is a logr.LogSink over zerolog.
type sink struct {
	log  zerolog.Logger
	name string
}

var _ logr.LogSink = (*sink)(nil)

func (s *sink) Init(logr.RuntimeInfo) {}

func (s *sink) Enabled(v int) bool {
	l := levelOf(v)
	return v <= MaxKlogVerbosity && l >= s.log.GetLevel() && l >= zerolog.GlobalLevel()
}

func (s *sink) Info(v int, msg string, kv ...any) {
	s.named(s.log.WithLevel(levelOf(v))).Fields(pairs(kv)).Msg(msg)
}

func (s *sink) Error(err error, msg string, kv ...any) {
	s.named(s.log.Error().Err(err)).Fields(pairs(kv)).Msg(msg)
}

func (s *sink) WithValues(kv ...any) logr.LogSink {
	return &sink{log: s.log.With().Fields(pairs(kv)).Logger(), name: s.name}
}

func (s *sink) WithName(name string) logr.LogSink {
	if s.name != "" {
		name = s.name + "/" + name
	}
	return &sink{log: s.log, name: name}
}

func (s *sink) named(e *zerolog.Event) *zerolog.Event {
	if s.name == "" {
		return e
	}
	return e.Str("logger", s.name)
}

// pairs normalises logr key/value pairs for zerolog's Fields: string keys,
// values in their logging form (klog.KObj's {name, namespace}), and a
// dangling key kept rather than dropped.
func pairs(kv []any) []any {
	out := make([]any, 0, len(kv)+1)
	for i := 0; i < len(kv); i += 2 {
		key, ok := kv[i].(string)
		if !ok {
			key = fmt.Sprint(kv[i])
		}
		var val any = "(MISSING)"
		if i+1 < len(kv) {
			val = kv[i+1]
		}
		if m, ok := val.(logr.Marshaler); ok {
			val = m.MarshalLog()
		}
		out = append(out, strings.TrimSpace(key), val)
	}
	return out
}
