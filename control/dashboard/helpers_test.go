package dashboard

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/protocol"
)

const testSecret = "dashboard-unit-admin-secret-0123456789abcdef"

// syncBuffer collects the logs (the token must never be in them).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// fixture is an engine, a control server and a dashboard mounted on it,
// on 127.0.0.1.
type fixture struct {
	t      *testing.T
	engine *netcore.Server
	ctl    *control.Server
	dash   *Dashboard
	base   string // http://host:port of the control port
	wsAddr string
	logs   *syncBuffer
}

func newFixture(t *testing.T, adjust ...func(*Options)) *fixture {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	eng, err := netcore.New(netcore.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), DrainDelay: -1, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	proto, err := protocol.New(eng, protocol.Config{ConnRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := control.New(control.Config{DataDir: t.TempDir(), AdminSecret: []byte(testSecret), Engine: eng, Protocol: proto, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Control: ctl, Interval: 50 * time.Millisecond, Version: "test", Logger: logger}
	for _, a := range adjust {
		a(&o)
	}
	dash, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Mount(dash.Prefix(), dash.Handler); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ctl.Serve(ln) }()
	go func() { _ = eng.Serve(wln) }()
	f := &fixture{t: t, engine: eng, ctl: ctl, dash: dash, base: "http://" + ln.Addr().String(), wsAddr: wln.Addr().String(), logs: logs}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = dash.Shutdown(ctx)
		_ = ctl.Shutdown(ctx)
		_ = eng.Shutdown(ctx)
	})
	return f
}

func (f *fixture) token(sub, role string) string {
	f.t.Helper()
	tok, err := control.RoleToken([]byte(testSecret), sub, role, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// noRedirect is a client that shows 303s instead of following them.
var noRedirect = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request; headers are "Name: value" pairs.
func (f *fixture) do(method, path string, body io.Reader, headers ...string) *response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.base+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// login posts the sign-in form.
func (f *fixture) login(token string, headers ...string) *response {
	f.t.Helper()
	return f.do("POST", "/dashboard/login", strings.NewReader(url.Values{"token": {token}}.Encode()),
		append([]string{"Content-Type: application/x-www-form-urlencoded"}, headers...)...)
}

// session signs in and returns the cookie header and the CSRF token.
func (f *fixture) session(role string) (cookie, csrf string) {
	f.t.Helper()
	r := f.login(f.token("alice-"+strings.ToLower(role), role))
	if r.status != http.StatusSeeOther {
		f.t.Fatalf("sign-in: %d %s", r.status, r.body)
	}
	c, _, _ := strings.Cut(r.header.Get("Set-Cookie"), ";")
	page := f.do("GET", "/dashboard", nil, "Cookie: "+c)
	_, rest, ok := strings.Cut(page.body, `<meta name="sockmon-csrf" content="`)
	if !ok {
		f.t.Fatalf("no CSRF token in the page: %s", page.body)
	}
	csrf, _, _ = strings.Cut(rest, `"`)
	return c, csrf
}
