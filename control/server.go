package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockmon/sockmon/control/alerts"
	"github.com/sockmon/sockmon/metrics"
	"github.com/sockmon/sockmon/netcore"
	"github.com/sockmon/sockmon/netcore/breaker"
	"github.com/sockmon/sockmon/netcore/protocol"
	"github.com/valyala/fasthttp"
)

// Server is the control sidecar: health, readiness, /metrics and the admin
// API on their own port. Create it with New, run it with Serve or
// ListenAndServe, stop it with Shutdown. Its exported methods are the Go
// side of the endpoints and are safe for concurrent use.
//
// It reads the engine and the protocol only through the snapshot and
// command methods of Engine and Protocol (atomics, per-shard copies); it
// never holds a lock of its own while it calls them, except cmdMu, which
// only orders admin commands among themselves.
type Server struct {
	cfg     Config
	engine  Engine
	proto   Protocol
	metrics *metrics.Metrics
	log     *slog.Logger
	store   *store
	auth    *failLimiter
	// refusalLines bounds the log lines of refusals before authentication.
	refusalLines *lineLimiter
	// redactor keeps what the audit log may of a request's data.
	redactor auditRedactor
	http     *fasthttp.Server
	started  time.Time

	// cmdMu orders the commands that change state, so that the store and
	// the engine see them in the same order (commit, then apply).
	cmdMu sync.Mutex

	// alerts is the alerts engine over the store. remMu guards what its
	// remediations hold on (taken after cmdMu, never before).
	alerts      *alerts.Engine
	remMu       sync.Mutex
	shedRules   map[string]bool
	maintRules  map[string]bool
	maintReason string // the maintenance reason the engine set, "" when not its own

	mu      sync.Mutex
	closed  bool
	serving int

	// bg is the context of the goroutines the server owns (an emergency
	// shutdown of the engine); Shutdown cancels it and waits on bgWG.
	bg       context.Context
	bgCancel context.CancelFunc
	bgWG     sync.WaitGroup

	emergency sync.Once

	// mounts are the handlers Mount added (the dashboard), set before
	// Serve and only read after.
	mounts []mount

	// The HAProxy agent (agent.go): what an operator set, the last state
	// answered (to log changes), the listeners Shutdown closes, and the
	// bound on connections answered at once.
	agentState atomic.Pointer[AgentStateRecord]
	agentLast  atomic.Pointer[string]
	agentLns   map[net.Listener]struct{}
	agentSem   chan struct{}
	agentWG    sync.WaitGroup

	// healthSnap is the metrics snapshot health answers from (health.go),
	// replaced every healthRefreshInterval by a goroutine that healthStop
	// stops and waits for.
	healthSnap atomic.Pointer[healthSnapshot]
	healthStop func()
}

// New checks cfg, opens the store under cfg.DataDir and re-applies the
// persisted state to the engine: maintenance mode (it stays on across a
// restart) and the per-user rate-limit overrides. Call it before the
// engine's Serve, so that no client is admitted before maintenance is back.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	st, err := openStore(cfg.DataDir, cfg.AuditMaxEntries, cfg.AuditMaxAge)
	if err != nil {
		return nil, err
	}
	st.audit.maxBytes = cfg.AuditMaxBytes
	st.setRefusedEntries(cfg.AuditRefusedEntries)
	s := &Server{
		cfg:     cfg,
		engine:  cfg.Engine,
		proto:   cfg.Protocol,
		metrics: cfg.Engine.Metrics(),
		log:     cfg.Logger.With("component", "control"),
		store:   st,
		auth:    newFailLimiter(cfg.AuthFailures, cfg.AuthFailureWindow, maxTrackedIPs),
		started: time.Now(),

		refusalLines: newLineLimiter(cfg.RefusalLogRate, time.Now()),
		redactor:     newAuditRedactor(cfg.AdminSecret, cfg.ClientSecret),

		agentLns:   map[net.Listener]struct{}{},
		agentSem:   make(chan struct{}, cfg.AgentMaxConns),
		shedRules:  map[string]bool{},
		maintRules: map[string]bool{},
	}
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	if c := cfg.Cluster; c != nil {
		c.Handle(s.runRemote)
		c.OnRateLimit(s.applySharedRateLimit)
	}
	if err := s.restore(); err != nil {
		_ = st.close()
		return nil, err
	}
	if err := s.startAlerts(); err != nil {
		_ = st.close()
		return nil, err
	}
	s.http = &fasthttp.Server{
		Handler:            s.serveHTTP,
		ErrorHandler:       s.serveHTTPError,
		HeaderReceived:     s.headerReceived,
		Name:               "sockmon-control",
		MaxRequestBodySize: cfg.MaxBodyBytes,
		ReadBufferSize:     maxHeaderBytes,
		ReadTimeout:        cfg.ReadTimeout,
		WriteTimeout:       cfg.WriteTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		// fasthttp's worker-pool cleaner sleeps this long between rounds
		// and only then sees a stop: it bounds how long that goroutine
		// outlives Shutdown.
		MaxIdleWorkerDuration:         time.Second,
		DisablePreParseMultipartForm:  true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		Logger:                        fasthttpLogger{s.log},
	}
	if len(cfg.AdminSecret) == 0 {
		s.log.Warn("the admin endpoints are off (503) because SOCKMON_ADMIN_SECRET is not set; set it to enable them")
	}
	s.logSecurityDefaults()
	s.startHealthSnapshots()
	return s, nil
}

// restore re-applies the persisted state to the engine.
func (s *Server) restore() error {
	m, err := s.store.maintenance()
	if err != nil {
		return fmt.Errorf("control: read maintenance state: %w", err)
	}
	if m.Enabled {
		// No drain: a node that restarts in maintenance has no clients.
		s.engine.SetMaintenance(true, m.Reason, false)
		s.log.Info("maintenance mode restored from the store", "reason", m.Reason, "since", m.Since, "by", m.By)
	}
	rls, err := s.store.rateLimits()
	if err != nil {
		return fmt.Errorf("control: read rate limits: %w", err)
	}
	for _, o := range rls {
		if err := s.proto.SetRateLimit(protocol.RateLimit{UserID: o.UserID, Limit: o.Limit, Window: time.Duration(o.WindowMs) * time.Millisecond}); err != nil {
			return fmt.Errorf("control: restore rate limit of %q: %w", o.UserID, err)
		}
	}
	if len(rls) > 0 {
		s.log.Info("rate-limit overrides restored from the store", "count", len(rls))
	}
	return s.restoreAgentState()
}

// Config returns the configuration in force, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Serve answers requests on ln until Shutdown, then returns
// ErrServerClosed. It may be called for several listeners.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.serving++
	s.mu.Unlock()
	err := s.http.Serve(newRetryListener(ln, s.log))
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || err == nil {
		return ErrServerClosed
	}
	return err
}

// ListenAndServe listens on Config.Addr and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("control: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ln)
}

// Shutdown stops accepting requests, waits for those in flight and for
// the goroutines the server owns until ctx ends, then cancels what is left
// and closes the store. It does not stop the engine. Calling it again
// returns at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for ln := range s.agentLns {
		_ = ln.Close()
	}
	s.mu.Unlock()
	s.stopHealthSnapshots()

	err := s.http.ShutdownWithContext(ctx)
	// The goroutines the server owns get until ctx ends to finish on their
	// own (an engine drain after an emergency shutdown keeps its own
	// deadline); then they are cancelled and no longer waited for.
	done := make(chan struct{})
	go func() { s.bgWG.Wait(); s.agentWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	s.bgCancel()
	// The alerts engine gets what is left of ctx, at most
	// alertsDrainTimeout, to deliver what it holds (a dead receiver must not
	// hold the shutdown); what it could not deliver is counted as dropped.
	actx, cancel := context.WithTimeout(ctx, alertsDrainTimeout)
	aerr := s.alerts.Close(actx)
	cancel()
	if ctx.Err() == nil {
		aerr = nil
	}
	// bbolt's Close waits for transactions still running.
	return errors.Join(err, aerr, s.store.close())
}

// alertsDrainTimeout bounds how long Shutdown lets the alerts engine
// deliver what it holds.
const alertsDrainTimeout = 2 * time.Second

// startAlerts builds the alerts engine over the store, gives it the
// stored rules and starts its evaluation.
func (s *Server) startAlerts() error {
	ac := s.cfg.Alerts
	ac.DB, ac.Metrics, ac.Remediator, ac.Logger = s.store.db, s.metrics, s, s.cfg.Logger
	eng := s.engine
	ac.Sources = alerts.Sources{
		// A node that does not serve (starting, draining) has no heartbeat
		// to miss.
		Heartbeat: func() time.Time {
			if eng.Draining() {
				return time.Time{}
			}
			return eng.LastHeartbeat()
		},
		HeartbeatTimeout: s.cfg.LivenessTimeout,
		SlowConsumers:    func() uint64 { return eng.Stats().SlowConsumers },
		OpenBreakers: func() int {
			n := 0
			for _, u := range s.upstreams() {
				if u.Breaker.State == breaker.Open {
					n++
				}
			}
			return n
		},
		MemoryLimit: s.cfg.MemoryLimit,
	}
	a, err := alerts.New(ac)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	s.alerts = a
	if err := s.reloadStoredRules(); err != nil {
		_ = a.Close(context.Background())
		return fmt.Errorf("control: %w", err)
	}
	a.Start()
	return nil
}

// spawn runs f on a goroutine that Shutdown cancels and waits for.
func (s *Server) spawn(f func(ctx context.Context)) {
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		f(s.bg)
	}()
}

// maxHeaderBytes caps a request head (fasthttp's read buffer): room for
// an oversized token to reach the auth check and be refused there.
const maxHeaderBytes = 8 << 10

// Paths of the control side. They keep the names of the system sockmon
// replaces, so existing probes and scripts work unchanged.
const (
	PathHealth  = "/api/health/socket"
	PathLivez   = "/livez"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"
	// PathAPIMetrics is /metrics under the seed's path.
	PathAPIMetrics = "/api/metrics"
	PathAdmin      = "/api/admin/socket"
)

// publicHealthPaths are the endpoints a second listener may answer too
// (the client port, so a load balancer can check the listener it sends
// clients to): never the admin API or /metrics.
var publicHealthPaths = [...]string{PathHealth, PathLivez, PathReadyz}

// PublicHealthPaths returns the paths PublicHealth answers.
func PublicHealthPaths() []string { return publicHealthPaths[:] }

// PublicHealth answers GET path (one of PublicHealthPaths) as this server
// does: the same method, so the same status and JSON body. ok is false for
// any other path.
func (s *Server) PublicHealth(path string) (status int, body []byte, ok bool) {
	var v interface{ HTTPStatus() int }
	switch path {
	case PathHealth:
		v = s.Health()
	case PathLivez:
		v = s.Livez()
	case PathReadyz:
		v = s.Readyz()
	default:
		return 0, nil, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return http.StatusInternalServerError, []byte(`{"status":"error"}`), true
	}
	return v.HTTPStatus(), b, true
}

// serveHTTP routes a request. Handlers are thin: they call the method of
// the endpoint and marshal its result outside any lock.
func (s *Server) serveHTTP(ctx *fasthttp.RequestCtx) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic in a control handler", "path", string(ctx.Path()), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			ctx.ResetBody()
			writeError(ctx, internalError("internal error", nil))
		}
	}()
	ctx.Response.Header.Set("Cache-Control", "no-store")
	method := string(ctx.Method())
	get := method == http.MethodGet || method == http.MethodHead
	switch string(ctx.Path()) {
	case PathHealth:
		switch {
		case get:
			s.handleHealth(ctx)
		case method == http.MethodPost:
			s.handleHealthDetails(ctx)
		default:
			methodNotAllowed(ctx, "GET, HEAD, POST")
		}
	case PathLivez:
		if !get {
			methodNotAllowed(ctx, "GET, HEAD")
			return
		}
		s.handleLivez(ctx)
	case PathReadyz:
		if !get {
			methodNotAllowed(ctx, "GET, HEAD")
			return
		}
		s.handleReadyz(ctx)
	case PathMetrics, PathAPIMetrics:
		if !get {
			methodNotAllowed(ctx, "GET, HEAD")
			return
		}
		s.handleMetrics(ctx)
	case PathAdmin:
		switch {
		case get:
			s.handleAdminStatus(ctx)
		case method == http.MethodPost:
			s.handleCommand(ctx)
		default:
			methodNotAllowed(ctx, "GET, HEAD, POST")
		}
	default:
		if h := s.mounted(ctx.Path()); h != nil {
			h(ctx)
			return
		}
		writeError(ctx, notFound("no endpoint at %s", ctx.Path()))
	}
}

// mount is a handler for every path under a prefix.
type mount struct {
	prefix string
	h      fasthttp.RequestHandler
}

// Mount routes every request whose path is prefix, or starts with
// prefix+"/", to h: how the dashboard (control/dashboard) is served on this
// port. Call it before Serve. prefix starts with "/", is none of the
// control paths and does not overlap another mount. h runs like the other
// handlers (on fasthttp's workers, panics recovered) after Cache-Control:
// no-store is set, which it may override.
func (s *Server) Mount(prefix string, h fasthttp.RequestHandler) error {
	if len(prefix) < 2 || prefix[0] != '/' || strings.HasSuffix(prefix, "/") || h == nil {
		return fmt.Errorf("control: mount %q: want a path such as /dashboard and a handler", prefix)
	}
	for _, p := range []string{PathHealth, PathLivez, PathReadyz, PathMetrics, PathAPIMetrics, PathAdmin} {
		if under(p, prefix) || under(prefix, p) {
			return fmt.Errorf("control: mount %q overlaps %s", prefix, p)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving > 0 {
		return fmt.Errorf("control: mount %q after Serve", prefix)
	}
	for _, m := range s.mounts {
		if under(m.prefix, prefix) || under(prefix, m.prefix) {
			return fmt.Errorf("control: mount %q overlaps %s", prefix, m.prefix)
		}
	}
	s.mounts = append(s.mounts, mount{prefix, h})
	return nil
}

// under reports whether path is prefix or below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func (s *Server) mounted(path []byte) fasthttp.RequestHandler {
	for _, m := range s.mounts {
		if under(string(path), m.prefix) {
			return m.h
		}
	}
	return nil
}

// serveHTTPError answers a request fasthttp could not read: for a body
// over its limit, the authentication refusal when the request carries no
// valid admin token (its limit was preAuthBodyBytes), else 413 (audited
// when it was an admin POST); 431 for a header over the read buffer, 408
// for a timeout, 400 otherwise.
func (s *Server) serveHTTPError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e := &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
			Message: fmt.Sprintf("request body over %d bytes", s.cfg.MaxBodyBytes)}
		path := string(ctx.Path())
		if path != PathAdmin && !(ctx.IsPost() && path == PathHealth) {
			// No endpoint but the admin ones reads a body: the limit was
			// preAuthBodyBytes unless the request carried an admin token.
			e.Message = "request body too large for this endpoint"
			writeError(ctx, e)
			return
		}
		ip := s.clientIP(ctx)
		n := ctx.Request.Header.ContentLength()
		p, r := s.authenticate(ctx, ip)
		if r != nil {
			s.refuseUnauthenticated(ctx, path, ip, r, n)
			return
		}
		if ctx.IsPost() {
			start := time.Now()
			rec := &AuditRecord{Time: start, Actor: p.Sub, SourceIP: ip.String(), Action: actionOf(path, nil), Data: bodySize(n)}
			rec.finish(e, start)
			_ = s.record(rec)
		}
		writeError(ctx, e)
	case errors.As(err, &small):
		writeError(ctx, &Error{Status: http.StatusRequestHeaderFieldsTooLarge, Code: CodeTooLarge, Message: "request header too large"})
	case errors.As(err, &ne) && ne.Timeout():
		writeError(ctx, &Error{Status: http.StatusRequestTimeout, Code: CodeBadRequest, Message: "request timeout"})
	default:
		writeError(ctx, badRequest("cannot parse the request"))
	}
}

// preAuthBodyBytes is the body limit of a request without a valid admin
// token: room for a small command and a dashboard login form, never a
// body worth the memory. Nothing of such a body is parsed.
const preAuthBodyBytes = 8 << 10

// headerReceived sets a request's body limit once fasthttp has read its
// head, before it reads the body: Config.MaxBodyBytes for a request whose
// Authorization verifies as an admin token, preAuthBodyBytes for any
// other. A refused request thus never costs more than a few KB, whatever
// its Content-Length or however many arrive at once.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	limit := min(preAuthBodyBytes, s.cfg.MaxBodyBytes)
	if auth := h.Peek("Authorization"); len(auth) > 0 && len(s.cfg.AdminSecret) > 0 {
		if _, aerr := s.verifyAdmin(string(auth)); aerr == nil {
			limit = s.cfg.MaxBodyBytes
		}
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: limit}
}

// logSecurityDefaults says at start the limits an operator may trip over:
// the body limit without a token, the lockout, the audit log's bounds, and
// the token checks in force (--jwt-audience, --jwt-issuer, --jwt-max-ttl).
func (s *Server) logSecurityDefaults() {
	c := &s.cfg
	s.log.Info("control security settings",
		"preAuthMaxBodyBytes", min(preAuthBodyBytes, c.MaxBodyBytes),
		"maxBodyBytes", c.MaxBodyBytes,
		"lockoutAfterFailures", c.AuthFailures,
		"lockoutWindow", c.AuthFailureWindow.String(),
		"auditMaxEntries", c.AuditMaxEntries,
		"auditMaxAge", c.AuditMaxAge.String(),
		"auditMaxBytes", c.AuditMaxBytes,
		"auditRefusedEntries", c.AuditRefusedEntries,
		"refusalLogRate", c.RefusalLogRate,
		// Keys that do not look like a secret's, or the redaction of the
		// logs removes the values.
		"audience", c.JWTAudience,
		"issuer", c.JWTIssuer,
		"maxLifetime", c.JWTMaxTTL.String())
}

// actionOf is the audit action of a refused request: the action the body
// names, if it is a short plain word.
func actionOf(path string, body []byte) string {
	if path == PathHealth {
		return ActionHealthDetails
	}
	var env struct {
		Action string `json:"action"`
	}
	if json.Unmarshal(body, &env) != nil || len(env.Action) > 64 {
		return ""
	}
	for _, r := range env.Action {
		if !(r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9')) {
			return ""
		}
	}
	return env.Action
}

// ClientIP is the address the audit log and the authentication lockout
// name for a request on this port: see clientIP.
func (s *Server) ClientIP(ctx *fasthttp.RequestCtx) string { return s.clientIP(ctx).String() }

// clientIP is the peer's IP, or, when the peer is a trusted proxy, the
// rightmost X-Forwarded-For address that is not (netcore.ForwardedClient,
// the same walk as the client port's).
func (s *Server) clientIP(ctx *fasthttp.RequestCtx) netip.Addr {
	ip, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return netcore.ForwardedClient(ip.Unmap(), string(ctx.Request.Header.Peek("X-Forwarded-For")), s.cfg.TrustedProxies)
}

// reply is the envelope of admin answers.
type reply struct {
	Success bool        `json:"success"`
	Data    any         `json:"data,omitempty"`
	Error   *replyError `json:"error,omitempty"`
}

type replyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// writeJSON marshals v as the response with status.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"success":false,"error":{"code":"internal","message":"cannot encode the reply"}}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// WriteJSON, WriteOK, WriteError and AsError answer in the admin API's
// envelope, for the handlers mounted on this port (Mount): the dashboard's
// API keeps the admin API's shapes and error codes.
func WriteJSON(ctx *fasthttp.RequestCtx, status int, v any) { writeJSON(ctx, status, v) }

// WriteOK writes {"success":true,"data":data}.
func WriteOK(ctx *fasthttp.RequestCtx, data any) { writeOK(ctx, data) }

// WriteError writes e as {"success":false,"error":{code,message,field}}
// with e's status.
func WriteError(ctx *fasthttp.RequestCtx, e *Error) { writeError(ctx, e) }

// AsError is err's *Error, or a 500 internal error for any other error.
func AsError(err error) *Error { return asError(err) }

// MethodNotAllowed answers 405 with Allow.
func MethodNotAllowed(ctx *fasthttp.RequestCtx, allow string) { methodNotAllowed(ctx, allow) }

// writeOK writes {"success":true,"data":data}.
func writeOK(ctx *fasthttp.RequestCtx, data any) {
	writeJSON(ctx, http.StatusOK, reply{Success: true, Data: data})
}

// writeError writes {"success":false,"error":{...}} with e's status.
func writeError(ctx *fasthttp.RequestCtx, e *Error) {
	writeJSON(ctx, e.Status, reply{Error: &replyError{Code: e.Code, Message: e.Message, Field: e.Field}})
}

func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	writeError(ctx, &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethod,
		Message: fmt.Sprintf("method %s not allowed; allowed: %s", ctx.Method(), allow)})
}

// fasthttpLogger sends fasthttp's free-text messages (broken connections
// and the like) to the structured log at debug level.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
}

func adminDisabled() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeAdminDisabled,
		Message: "the admin API is off on this node: no admin secret is configured (SOCKMON_ADMIN_SECRET)"}
}
