package loadtest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
)

// dialError carries the error class a failed dial is counted under.
type dialError struct {
	class string
	err   error
}

func (e *dialError) Error() string { return e.class + ": " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// dialer opens and upgrades connections for a run. ws:// connections are
// netpoll connections read from netpoll's event loop (no goroutine while
// idle); wss:// connections use crypto/tls, which needs blocking reads, so
// each holds one reader goroutine.
type dialer struct {
	cfg   *Config
	u     *url.URL
	raddr *net.TCPAddr
	tls   *tls.Config

	wg sync.WaitGroup // reader goroutines of wss:// connections
}

func newDialer(cfg *Config) (*dialer, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, err
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "wss" {
			port = "443"
		}
	}
	raddr, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, fmt.Errorf("loadtest: resolve %s: %w", u.Host, err)
	}
	d := &dialer{cfg: cfg, u: u, raddr: raddr}
	if u.Scheme == "wss" {
		d.tls = &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: cfg.Insecure}
	}
	return d, nil
}

// header returns the upgrade request header of connection n.
func (d *dialer) header(n int) (http.Header, error) {
	h := d.cfg.Header.Clone()
	if h == nil {
		h = make(http.Header)
	}
	switch {
	case len(d.cfg.JWTSecret) > 0:
		now := time.Now()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "load-" + strconv.Itoa(n),
			"iat": now.Unix(),
			"exp": now.Add(d.cfg.Duration + 24*time.Hour).Unix(),
		}).SignedString(d.cfg.JWTSecret)
		if err != nil {
			return nil, err
		}
		h.Set("Authorization", "Bearer "+tok)
	case d.cfg.Token != "":
		h.Set("Authorization", "Bearer "+d.cfg.Token)
	}
	return h, nil
}

func (d *dialer) source(n int) (netip.Addr, bool) {
	if len(d.cfg.Sources) == 0 {
		return netip.Addr{}, false
	}
	return d.cfg.Sources[n%len(d.cfg.Sources)], true
}

// dial opens connection n for s and attaches it. The error is a *dialError.
func (d *dialer) dial(ctx context.Context, s *session, n int) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	h, err := d.header(n)
	if err != nil {
		return &dialError{ErrClassHandshake, err}
	}
	if d.tls != nil {
		return d.dialTLS(ctx, s, n, h)
	}
	var laddr *netpoll.TCPAddr
	if src, ok := d.source(n); ok {
		laddr = &netpoll.TCPAddr{TCPAddr: net.TCPAddr{IP: src.AsSlice()}}
	}
	conn, err := netpoll.DialTCP(ctx, "tcp", laddr, &netpoll.TCPAddr{TCPAddr: *d.raddr})
	if err != nil {
		return &dialError{ErrClassDial, err}
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	wsd := ws.Dialer{Header: ws.HandshakeHeaderHTTP(h)}
	if _, _, err := wsd.Upgrade(&lineConn{c: conn}, d.u); err != nil {
		conn.Close()
		return handshakeError(err)
	}
	_ = conn.SetDeadline(time.Time{})
	// A frame that arrives in part is waited for at most Timeout.
	_ = conn.SetReadTimeout(d.cfg.Timeout)
	_ = conn.SetWriteTimeout(d.cfg.Timeout)
	s.attach(&netpollWire{c: conn})
	_ = conn.AddCloseCallback(func(netpoll.Connection) error {
		s.onWireClosed()
		return nil
	})
	return conn.SetOnRequest(s.onRequest)
}

func handshakeError(err error) *dialError {
	var st ws.StatusError
	if errors.As(err, &st) {
		return &dialError{classWithCode(ErrClassHandshake, int(st)), err}
	}
	return &dialError{ErrClassHandshake, err}
}

// lineConn hands the handshake reader one response line at a time, so the
// bufio.Reader inside ws.Dialer never reads past the end of the response
// headers: every byte after them stays in netpoll's buffer for onRequest.
type lineConn struct {
	c    netpoll.Connection
	buf  []byte
	line []byte
}

func (l *lineConn) Read(p []byte) (int, error) {
	if len(l.line) == 0 {
		r := l.c.Reader()
		b, err := r.Until('\n')
		if len(b) == 0 && err != nil {
			return 0, err
		}
		l.buf = append(l.buf[:0], b...)
		l.line = l.buf
		_ = r.Release()
	}
	n := copy(p, l.line)
	l.line = l.line[n:]
	return n, nil
}

func (l *lineConn) Write(p []byte) (int, error) { return l.c.Write(p) }

// onRequest is the netpoll OnRequest handler: it reads one frame, waiting at
// most the read timeout for the rest of a partial frame, and hands it to
// onFrame. netpoll calls it again while input remains.
func (s *session) onRequest(_ context.Context, c netpoll.Connection) error {
	h, err := ws.ReadHeader(c)
	if err != nil {
		s.readFailed(err)
		return err
	}
	if h.Masked || h.Rsv != 0 || h.Length > MaxSize {
		s.protocolError()
		return errProtocol
	}
	r := c.Reader()
	payload, err := r.Next(int(h.Length))
	if err != nil {
		s.readFailed(err)
		return err
	}
	s.onFrame(h, payload, s.run.clock.Now())
	return r.Release()
}

var errProtocol = errors.New("loadtest: protocol error from server")

// readFailed counts a read that failed mid-frame: a timeout when the frame
// stalled, nothing more when the connection was closed (onWireClosed counts
// that).
func (s *session) readFailed(err error) {
	if errors.Is(err, netpoll.ErrReadTimeout) {
		s.run.stats.addError(ErrClassTimeout)
		s.mu.Lock()
		s.goneLocked(true)
		s.mu.Unlock()
	}
}

// netpollWire is a ws:// connection on netpoll.
type netpollWire struct{ c netpoll.Connection }

func (w *netpollWire) write(frame []byte) error {
	buf, err := w.c.Writer().Malloc(len(frame))
	if err != nil {
		return err
	}
	copy(buf, frame)
	return w.c.Writer().Flush()
}

func (w *netpollWire) close() error { return w.c.Close() }

// dialTLS opens a wss:// connection with crypto/tls and starts its reader.
func (d *dialer) dialTLS(ctx context.Context, s *session, n int, h http.Header) error {
	nd := net.Dialer{}
	if src, ok := d.source(n); ok {
		nd.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	raw, err := nd.DialContext(ctx, "tcp", d.raddr.String())
	if err != nil {
		return &dialError{ErrClassDial, err}
	}
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	tc := tls.Client(raw, d.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return &dialError{ErrClassHandshake + "_tls", err}
	}
	wsd := ws.Dialer{Header: ws.HandshakeHeaderHTTP(h)}
	br, _, err := wsd.Upgrade(tc, d.u)
	if err != nil {
		raw.Close()
		return handshakeError(err)
	}
	_ = raw.SetDeadline(time.Time{})
	var rd io.Reader = tc
	if br != nil {
		rd = br
	}
	w := &streamWire{c: tc, timeout: d.cfg.Timeout}
	s.attach(w)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		w.readLoop(s, bufio.NewReaderSize(rd, 4096))
	}()
	return nil
}

// streamWire is a connection read by its own goroutine (wss://).
type streamWire struct {
	c       net.Conn
	timeout time.Duration
}

func (w *streamWire) write(frame []byte) error {
	_ = w.c.SetWriteDeadline(time.Now().Add(w.timeout))
	_, err := w.c.Write(frame)
	return err
}

func (w *streamWire) close() error { return w.c.Close() }

// readLoop reads frames until the connection fails or is closed.
func (w *streamWire) readLoop(s *session, r *bufio.Reader) {
	defer s.onWireClosed()
	var buf []byte
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return
		}
		if h.Masked || h.Rsv != 0 || h.Length > MaxSize {
			s.protocolError()
			return
		}
		if int64(cap(buf)) < h.Length {
			buf = make([]byte, h.Length)
		}
		buf = buf[:h.Length]
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		s.onFrame(h, buf, s.run.clock.Now())
	}
}
