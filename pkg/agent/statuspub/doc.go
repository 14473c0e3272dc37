// Package statuspub publishes connection status events to the control
// plane's status stream, one subject per connection, deduplicated by the
// server so that the intake and the informer that both see a phase change
// produce one event.
package statuspub
