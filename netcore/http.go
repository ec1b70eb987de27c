package netcore

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/sockmon/sockmon/netcore/wsproto"
)

// Plain HTTP on the client port, for load balancers that check the very
// listener they send clients to: a GET or HEAD that is not an upgrade, on
// a path registered with HandleHTTP, is answered and the connection closed
// (lingering, like every close). Every other path stays WebSocket only.

// HTTPHandler answers a plain GET or HEAD on the client port: a status, a
// Content-Type and a body (sent without its body for HEAD). It runs on the
// connection's reader goroutine and must not block for long.
type HTTPHandler func(req *Request) (status int, contentType string, body []byte)

// HandleHTTP registers h for plain GET and HEAD requests to path. Register
// before Serve; it reports an error for a path that does not start with
// "/", a path taken by a WebSocket route or another handler, and after
// Serve.
func (s *Server) HandleHTTP(path string, h HTTPHandler) error {
	switch {
	case s.serving.Load() || s.Addr() != nil:
		return fmt.Errorf("netcore: HTTP handler %q registered after Serve", path)
	case !strings.HasPrefix(path, "/"):
		return fmt.Errorf("netcore: HTTP path %q must start with /", path)
	case h == nil:
		return fmt.Errorf("netcore: HTTP path %q: nil handler", path)
	case s.route(path) != nil || s.httpRoutes[path] != nil:
		return fmt.Errorf("netcore: path %q registered twice", path)
	}
	if s.httpRoutes == nil {
		s.httpRoutes = map[string]HTTPHandler{}
	}
	s.httpRoutes[path] = h
	return nil
}

// answerHTTP answers a plain request to a HandleHTTP path, then starts the
// lingering close.
func (c *Conn) answerHTTP(req *Request, h HTTPHandler) {
	c.readDone = true
	buf := getBuffer()
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		*buf = wsproto.AppendRefusal((*buf)[:0], http.StatusMethodNotAllowed, "use GET or HEAD", [][2]string{{"Allow", "GET, HEAD"}})
	} else {
		status, ctype, body := h(req)
		*buf = wsproto.AppendResponse((*buf)[:0], status, ctype, [][2]string{{"Cache-Control", "no-store"}}, body, req.Method == http.MethodHead)
	}
	w := c.nc.Writer()
	dst, err := w.Malloc(len(*buf))
	if err == nil {
		copy(dst, *buf)
		err = w.Flush()
	}
	putBuffer(buf)
	if err != nil {
		_ = c.nc.Close()
		return
	}
	c.startLinger()
}
