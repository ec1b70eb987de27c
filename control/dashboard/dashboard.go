package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sockmon/sockmon/control"
	"github.com/sockmon/sockmon/metrics"
	"github.com/valyala/fasthttp"
)

// Defaults, in one place.
const (
	// DefaultPrefix is where cmd/sockmon mounts the dashboard.
	DefaultPrefix = "/dashboard"
	// DefaultInterval is how often a live stream sends the status
	// (--dashboard-interval).
	DefaultInterval = 2 * time.Second
	// MaxInterval is the slowest interval allowed: the seed's dashboard
	// refreshed every 5 s.
	MaxInterval = 5 * time.Second
	// MinInterval is the fastest.
	MinInterval = 10 * time.Millisecond
	// DefaultMaxClients bounds the live streams (--dashboard-max-clients).
	DefaultMaxClients = 20
	// DefaultWriteTimeout is how long one write to a stream may block
	// before the stream is dropped as stalled.
	DefaultWriteTimeout = 5 * time.Second
	// DefaultSessionTTL caps a session, whatever the token's expiry.
	DefaultSessionTTL = 12 * time.Hour
	// DefaultMaxSessions bounds the sessions kept; the oldest goes first.
	DefaultMaxSessions = 1000
)

// Control is what the dashboard needs of the control server
// (*control.Server implements it).
type Control interface {
	Authenticate(ip, token string) (control.Principal, *control.Error)
	ClientIP(ctx *fasthttp.RequestCtx) string
	AdminStatus() (*control.AdminStatus, error)
	MetricsHistory(o control.HistoryOptions) metrics.HistoryResult
	Command(actor control.Actor, action string, data json.RawMessage) (any, error)
	Read(actor control.Actor, action string, data json.RawMessage) (any, error)
}

var _ Control = (*control.Server)(nil)

// Options configures a Dashboard. A zero field means the default.
type Options struct {
	// Control is the control server the dashboard reads and commands
	// through. Required.
	Control Control
	// Prefix is the path the dashboard is mounted at. Default /dashboard.
	Prefix string
	// Interval is how often a live stream sends the status: between
	// MinInterval and MaxInterval. Default 2 s.
	Interval time.Duration
	// MaxClients bounds the live streams open at once; more get 503.
	// Default 20.
	MaxClients int
	// WriteTimeout is how long one write to a stream may block before the
	// stream is dropped. Default 5 s.
	WriteTimeout time.Duration
	// SessionTTL caps a session's life; the token's expiry caps it too.
	// Default 12 h.
	SessionTTL time.Duration
	// MaxSessions bounds the sessions kept. Default 1000.
	MaxSessions int
	// Version is shown on the page.
	Version string
	// Logger receives sign-ins, sign-outs and dropped streams. Default: a
	// JSON handler on standard error.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.MaxClients == 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.Version == "" {
		o.Version = "unknown"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// validate reports every configuration error at once.
func (o *Options) validate() error {
	var errs []error
	if o.Control == nil {
		errs = append(errs, errors.New("dashboard: a control server is required"))
	}
	if !strings.HasPrefix(o.Prefix, "/") || strings.HasSuffix(o.Prefix, "/") {
		errs = append(errs, fmt.Errorf("dashboard: prefix %q: want a path such as /dashboard", o.Prefix))
	}
	if o.Interval < MinInterval || o.Interval > MaxInterval {
		errs = append(errs, fmt.Errorf("dashboard: interval %s: want between %s and %s", o.Interval, MinInterval, MaxInterval))
	}
	if o.MaxClients < 1 {
		errs = append(errs, fmt.Errorf("dashboard: max clients %d: want at least 1", o.MaxClients))
	}
	if o.WriteTimeout < 0 || o.SessionTTL < 0 || o.MaxSessions < 1 {
		errs = append(errs, errors.New("dashboard: write timeout, session TTL and max sessions must be positive"))
	}
	return errors.Join(errs...)
}

// Dashboard serves the dashboard. Create it with New, mount Handler on the
// control server, stop it with Shutdown. It is safe for concurrent use.
type Dashboard struct {
	opts     Options
	ctl      Control
	log      *slog.Logger
	sessions *sessions
	assets   *assets

	// snapshot cache shared by the streams (stream.go).
	snapMu   sync.Mutex
	snapAt   time.Time
	snapBody []byte

	// live streams: their count (at most MaxClients), their connections
	// (closed by Shutdown) and their goroutines.
	mu      sync.Mutex
	closed  bool
	streams map[net.Conn]struct{}
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
}

// New checks o and builds the dashboard.
func New(o Options) (*Dashboard, error) {
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	a, err := loadAssets(o.Prefix)
	if err != nil {
		return nil, err
	}
	ss, err := newSessions(o.MaxSessions, o.SessionTTL)
	if err != nil {
		return nil, err
	}
	d := &Dashboard{opts: o, ctl: o.Control, log: o.Logger.With("component", "dashboard"), sessions: ss, assets: a,
		streams: map[net.Conn]struct{}{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d, nil
}

// Options returns the options in force, defaults filled in.
func (d *Dashboard) Options() Options { return d.opts }

// Prefix is the path the dashboard answers under.
func (d *Dashboard) Prefix() string { return d.opts.Prefix }

// Shutdown closes every live stream and waits for their goroutines until
// ctx ends. Requests after it get 503.
func (d *Dashboard) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	for c := range d.streams {
		stop(c)
	}
	d.mu.Unlock()
	d.cancel()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Handler serves every request under the prefix (control.Server.Mount).
func (d *Dashboard) Handler(ctx *fasthttp.RequestCtx) {
	securityHeaders(&ctx.Response.Header)
	path := string(ctx.Path())
	rest, ok := strings.CutPrefix(path, d.opts.Prefix)
	if !ok {
		d.notFound(ctx)
		return
	}
	method := string(ctx.Method())
	get := method == http.MethodGet || method == http.MethodHead
	switch {
	case rest == "" || rest == "/":
		if !get {
			control.MethodNotAllowed(ctx, "GET, HEAD")
			return
		}
		d.page(ctx)
	case rest == "/login":
		if method != http.MethodPost {
			control.MethodNotAllowed(ctx, "POST")
			return
		}
		d.login(ctx)
	case rest == "/logout":
		if method != http.MethodPost {
			control.MethodNotAllowed(ctx, "POST")
			return
		}
		d.logout(ctx)
	case rest == "/events":
		if method != http.MethodGet {
			control.MethodNotAllowed(ctx, "GET")
			return
		}
		d.events(ctx)
	case rest == "/api/status":
		if !get {
			control.MethodNotAllowed(ctx, "GET, HEAD")
			return
		}
		d.apiStatus(ctx)
	case rest == "/api/action":
		if method != http.MethodPost {
			control.MethodNotAllowed(ctx, "POST")
			return
		}
		d.apiAction(ctx)
	case strings.HasPrefix(rest, "/static/"):
		if !get {
			control.MethodNotAllowed(ctx, "GET, HEAD")
			return
		}
		d.assets.serve(ctx, strings.TrimPrefix(rest, "/static/"))
	default:
		d.notFound(ctx)
	}
}

// securityHeaders are on every answer: no inline script or style, no
// framing, no referrer, no sniffing.
func securityHeaders(h *fasthttp.ResponseHeader) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// contentSecurityPolicy allows the page's own files and nothing else:
// scripts and styles only from /static (uPlot sets element styles through
// the CSSOM, which style-src does not govern), fetches and the event stream
// to this origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// page answers GET /dashboard: the dashboard with a session, the sign-in
// form without.
func (d *Dashboard) page(ctx *fasthttp.RequestCtx) {
	s := d.session(ctx)
	if s == nil {
		d.loginForm(ctx, http.StatusOK, "")
		return
	}
	d.assets.renderApp(ctx, appData{
		Prefix: d.opts.Prefix, CSRF: s.csrf, Sub: s.sub, Role: s.role, Version: d.opts.Version,
		IntervalMs: d.opts.Interval.Milliseconds(), ExpiresMs: s.expires.UnixMilli(),
		Actions: strings.Join(auditedActions(), " "),
	})
}

// auditedActions lists, sorted, the actions the audit log records: the
// admin API's (control.Actions), health details and the alerts engine's
// remediations.
func auditedActions() []string {
	out := append(control.Actions(), control.ActionHealthDetails, control.ActionAlertRemediation)
	slices.Sort(out)
	return slices.Compact(out)
}

func (d *Dashboard) loginForm(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	d.assets.renderLogin(ctx, loginData{Prefix: d.opts.Prefix, Error: msg})
}

// login answers POST /dashboard/login: the form field token, verified as
// the admin API verifies a bearer token. The token is read from the body
// only (a token in the query string is refused unread) and never logged.
func (d *Dashboard) login(ctx *fasthttp.RequestCtx) {
	if !sameOrigin(ctx) {
		d.loginForm(ctx, http.StatusForbidden, "Sign-in refused: the form was posted from another site.")
		return
	}
	if ctx.QueryArgs().Has("token") {
		d.loginForm(ctx, http.StatusBadRequest, "Paste the token into the form; never put it in a URL.")
		return
	}
	token := string(ctx.PostArgs().Peek("token"))
	ip := d.ctl.ClientIP(ctx)
	p, e := d.ctl.Authenticate(ip, token)
	if e != nil {
		msg := "Sign-in refused: " + e.Message + "."
		if e.Status == http.StatusTooManyRequests && e.RetryAfter > 0 {
			ctx.Response.Header.Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
		}
		status := e.Status
		if status == http.StatusForbidden {
			// The route's contract: a token that does not sign in is 401.
			status = http.StatusUnauthorized
		}
		d.loginForm(ctx, status, msg)
		return
	}
	s := d.sessions.create(p, time.Now())
	setSessionCookie(ctx, d.opts.Prefix, d.sessions.cookieValue(s), s.expires)
	d.log.Info("dashboard sign-in", "sub", p.Sub, "role", p.Role, "sourceIp", ip, "expires", s.expires.UTC())
	seeOther(ctx, d.opts.Prefix)
}

// seeOther answers 303 with a relative Location (the host as the browser
// reached it, whatever proxy is in front).
func seeOther(ctx *fasthttp.RequestCtx, location string) {
	ctx.Response.Header.Set("Location", location)
	ctx.SetStatusCode(http.StatusSeeOther)
}

// logout answers POST /dashboard/logout: with the session's CSRF token in
// the form field csrf, it ends the session. The cookie is cleared either
// way.
func (d *Dashboard) logout(ctx *fasthttp.RequestCtx) {
	s := d.session(ctx)
	if s != nil {
		if !sameOrigin(ctx) || !s.checkCSRF(string(ctx.PostArgs().Peek("csrf"))) {
			control.WriteError(ctx, &control.Error{Status: http.StatusForbidden, Code: control.CodeForbidden, Message: "missing or wrong CSRF token"})
			return
		}
		d.sessions.revoke(s.id)
		d.log.Info("dashboard sign-out", "sub", s.sub, "sourceIp", d.ctl.ClientIP(ctx))
	}
	clearSessionCookie(ctx, d.opts.Prefix)
	seeOther(ctx, d.opts.Prefix)
}

// session returns the request's valid session, or nil.
func (d *Dashboard) session(ctx *fasthttp.RequestCtx) *session {
	return d.sessions.get(string(ctx.Request.Header.Cookie(cookieName)), time.Now())
}

// apiSession gates an API request: the session, and for a POST its CSRF
// token (header X-CSRF-Token) and origin. It writes the refusal itself.
func (d *Dashboard) apiSession(ctx *fasthttp.RequestCtx, post bool) *session {
	s := d.session(ctx)
	if s == nil {
		control.WriteError(ctx, &control.Error{Status: http.StatusUnauthorized, Code: control.CodeUnauthorized, Message: "no dashboard session: sign in again"})
		return nil
	}
	if post && (!sameOrigin(ctx) || !s.checkCSRF(string(ctx.Request.Header.Peek("X-CSRF-Token")))) {
		control.WriteError(ctx, &control.Error{Status: http.StatusForbidden, Code: control.CodeForbidden, Message: "missing or wrong CSRF token"})
		return nil
	}
	return s
}

// apiStatus answers GET /dashboard/api/status: one status, as a stream
// event carries it.
func (d *Dashboard) apiStatus(ctx *fasthttp.RequestCtx) {
	if d.apiSession(ctx, false) == nil {
		return
	}
	b, err := d.snapshot(time.Now())
	if err != nil {
		control.WriteError(ctx, control.AsError(err))
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// maxActionBody bounds the body of POST /dashboard/api/action below the
// control server's own limit.
const maxActionBody = 256 << 10

// apiAction answers POST /dashboard/api/action: {"action":...,"data":...}
// as the signed-in user. get_* actions are reads (control.Server.Read, not
// audited); every other goes through control.Server.Command, audited with
// the session's sub as actor and its source IP, and refused with 403 for a
// VIEWER.
func (d *Dashboard) apiAction(ctx *fasthttp.RequestCtx) {
	s := d.apiSession(ctx, true)
	if s == nil {
		return
	}
	body := ctx.PostBody()
	if len(body) > maxActionBody {
		control.WriteError(ctx, &control.Error{Status: http.StatusRequestEntityTooLarge, Code: control.CodeTooLarge, Message: "request body too large"})
		return
	}
	var env struct {
		Action string          `json:"action"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Action == "" {
		control.WriteError(ctx, &control.Error{Status: http.StatusBadRequest, Code: control.CodeBadRequest, Message: `want {"action":...,"data":{...}}`})
		return
	}
	actor := control.Actor{Sub: s.sub, IP: d.ctl.ClientIP(ctx), Role: s.role}
	var res any
	var err error
	if control.ReadOnlyAction(env.Action) {
		res, err = d.ctl.Read(actor, env.Action, env.Data)
	} else {
		res, err = d.ctl.Command(actor, env.Action, env.Data)
	}
	if err != nil {
		control.WriteError(ctx, control.AsError(err))
		return
	}
	control.WriteOK(ctx, res)
}

func (d *Dashboard) notFound(ctx *fasthttp.RequestCtx) {
	control.WriteError(ctx, &control.Error{Status: http.StatusNotFound, Code: control.CodeNotFound, Message: "no dashboard page at " + string(ctx.Path())})
}

// sameOrigin reports whether a POST comes from this origin. Browsers send
// Sec-Fetch-Site, which decides when present; otherwise Origin must name
// this host (the page's no-referrer policy makes a browser's form POST say
// Origin: null, but such a browser sends Sec-Fetch-Site). A request with
// neither is not a browser's: CSRF does not apply to it, and it stands or
// falls by its CSRF token.
func sameOrigin(ctx *fasthttp.RequestCtx) bool {
	if site := string(ctx.Request.Header.Peek("Sec-Fetch-Site")); site != "" {
		return site == "same-origin" || site == "none"
	}
	origin := string(ctx.Request.Header.Peek("Origin"))
	if origin == "" {
		return true
	}
	_, host, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(host, string(ctx.Host()))
}
