package devserver

import (
	"fmt"

	"github.com/rs/zerolog"
)

// serverLogger forwards nats-server's log lines to zerolog. Notices are
// demoted to debug: a development server's startup banner is noise in tests.
type serverLogger struct{ log zerolog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.emit(l.log.Debug(), format, v) }
func (l serverLogger) Warnf(format string, v ...any)   { l.emit(l.log.Warn(), format, v) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.emit(l.log.Error(), format, v) }
func (l serverLogger) Errorf(format string, v ...any)  { l.emit(l.log.Error(), format, v) }
func (l serverLogger) Debugf(format string, v ...any)  { l.emit(l.log.Trace(), format, v) }
func (l serverLogger) Tracef(format string, v ...any)  { l.emit(l.log.Trace(), format, v) }

func (serverLogger) emit(ev *zerolog.Event, format string, v []any) {
	ev.Str("component", "nats-server").Msg(fmt.Sprintf(format, v...))
}
