// Package logging is the one place that builds the process logger: a
// zerolog.Logger writing JSON lines for log pipelines or a plain text line
// for people, and the bridge that routes everything client-go logs through
// klog into that same logger, so a process writes one format only.
package logging
