package control

import (
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// retryListener is a listener whose Accept waits out temporary failures
// (out of file descriptors, of kernel buffers, a connection aborted before
// it was taken) with a backoff from 5 ms to 1 s, as net/http's server does,
// instead of returning them: fasthttp treats every error but a timeout as
// permanent and stops serving, so a burst of idle connections on the client
// port would otherwise end the control side, health checks included.
type retryListener struct {
	net.Listener
	log    *slog.Logger
	logged atomic.Int64 // unix seconds of the last warning: one a second at most
}

func newRetryListener(ln net.Listener, log *slog.Logger) net.Listener {
	return &retryListener{Listener: ln, log: log}
}

func (l *retryListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil || !isTemporaryAccept(err) {
			return c, err
		}
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		if now := time.Now().Unix(); l.logged.Swap(now) != now {
			l.log.Warn("accept failed; retrying", "addr", l.Addr().String(), "err", err, "retryIn", backoff.String())
		}
		time.Sleep(backoff)
	}
}

// isTemporaryAccept reports an accept error that passes by itself.
func isTemporaryAccept(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED)
}
