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
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sys/unix"
)

// dialError carries the error class a failed dial is counted under.
type dialError struct {
	class string
	err   error
}

func (e *dialError) Error() string { return e.class + ": " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// dialer opens and upgrades connections for a run. ws:// connections are
// handed to the run's poller once upgraded (no goroutine while idle);
// wss:// connections use crypto/tls, which needs blocking reads, so each
// holds one reader goroutine.
type dialer struct {
	cfg   *Config
	u     *url.URL
	raddr *net.TCPAddr
	tls   *tls.Config

	poller *poller
	wg     sync.WaitGroup // reader goroutines of wss:// connections
}

func newDialer(cfg *Config, p *poller) (*dialer, error) {
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
	d := &dialer{cfg: cfg, u: u, raddr: raddr, poller: p}
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
	nd := net.Dialer{}
	if src, ok := d.source(n); ok {
		nd.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	conn, err := nd.DialContext(ctx, "tcp", d.raddr.String())
	if err != nil {
		return &dialError{ErrClassDial, err}
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	wsd := ws.Dialer{Header: ws.HandshakeHeaderHTTP(h)}
	br, _, err := wsd.Upgrade(conn, d.u)
	if err != nil {
		return handshakeError(err)
	}
	var pending []byte
	if br != nil && br.Buffered() > 0 {
		pending, _ = br.Peek(br.Buffered())
	}
	fd, err := dupSocket(conn)
	if err != nil {
		return &dialError{ErrClassDial, err}
	}
	// The poller reads the duplicate from here on; closing conn (deferred)
	// removes the original from Go's poller without ending the connection.
	if err := d.poller.attach(s, fd, pending); err != nil {
		return &dialError{ErrClassDial, err}
	}
	return nil
}

// dupSocket duplicates conn's descriptor as a non-blocking, close-on-exec
// descriptor of its own.
func dupSocket(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("loadtest: %T has no descriptor", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func handshakeError(err error) *dialError {
	var st ws.StatusError
	if errors.As(err, &st) {
		return &dialError{classWithCode(ErrClassHandshake, int(st)), err}
	}
	return &dialError{ErrClassHandshake, err}
}

var errProtocol = errors.New("loadtest: protocol error from server")

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
