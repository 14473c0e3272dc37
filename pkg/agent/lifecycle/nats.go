package lifecycle

import (
	"time"

	"github.com/nats-io/nats.go"
)

// DrainNATS flushes what is buffered (a last status event) and closes nc,
// giving up and closing after timeout: a server that went away must not
// hold the pod in Terminating.
func DrainNATS(nc *nats.Conn, timeout time.Duration) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		nc.Close()
	}
}
