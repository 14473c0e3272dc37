package logging

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Formats New accepts.
const (
	// FormatJSON writes one JSON object per line with zerolog's field names:
	// "level", "time" (RFC 3339), "message", then the event's own fields.
	FormatJSON = "json"
	// FormatText writes "TIME LVL message key=value ..." for people reading
	// `kubectl logs`; colours only when w is a terminal.
	FormatText = "text"
)

// ErrFormat: the format is neither FormatJSON nor FormatText.
var ErrFormat = errors.New("unknown log format")

// New builds the process logger writing to w in format. The caller sets the
// level and its component fields. A text line leaves out the fields named in
// hide: the ones its messages already say in words, which would only make a
// line people read twice as long. JSON keeps every field for pipelines.
func New(w io.Writer, format string, hide ...string) (zerolog.Logger, error) {
	switch format {
	case FormatJSON:
		return zerolog.New(w).With().Timestamp().Logger(), nil
	case FormatText:
		tw := textWriter(w)
		tw.FieldsExclude = hide
		return zerolog.New(tw).With().Timestamp().Logger(), nil
	default:
		return zerolog.Nop(), fmt.Errorf("%w %q (want %s or %s)", ErrFormat, format, FormatJSON, FormatText)
	}
}

func textWriter(w io.Writer) zerolog.ConsoleWriter {
	return zerolog.ConsoleWriter{Out: w, NoColor: !colour(w), TimeFormat: time.RFC3339}
}

// colour: escape codes only reach a terminal; a pod's log file or a pipe
// would keep them as noise. NO_COLOR (no-color.org) turns them off anyway.
func colour(w io.Writer) bool {
	if _, off := os.LookupEnv("NO_COLOR"); off {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
