package control

import (
	"cmp"
	"container/list"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sockmon/sockmon/netcore"
	"github.com/valyala/fasthttp"
)

// Admin authentication: Authorization: Bearer <JWT>, HS256 with the admin
// secret and nothing else, claims admin: true, role: "ADMIN" or "VIEWER", a
// sub (the actor of the audit log) and an exp; aud, iss and the lifetime too
// when Config.JWTAudience, JWTIssuer and JWTMaxTTL are set. 401 for a
// missing or invalid token, 403 for a valid token without the claims, 429
// for a request without a valid admin token from an address locked out by
// its failures, 503 when no admin secret is configured. A VIEWER reads
// everything (the admin GET, the detailed health, every get_* action, the
// dashboard) and is refused every action that changes state with 403
// (ReadOnlyAction).
//
// The token is verified first: a valid admin token is admitted from any
// address, locked out or not, so that a client behind the same NAT or
// bastion as the operators cannot keep them out. Why a token was refused
// goes to the log and the audit record, never to the caller beyond
// "invalid token" (unless the signature verified with the admin secret).

// Roles of the role claim.
const (
	// AdminRole reads and acts.
	AdminRole = "ADMIN"
	// ViewerRole reads only.
	ViewerRole = "VIEWER"
)

// Principal is who a verified admin token names: the sub (the audit log's
// actor), the role and when the token expires.
type Principal struct {
	Sub     string
	Role    string
	Expires time.Time
}

// maxTokenBytes bounds the token parsed: anything longer is refused
// without being decoded.
const maxTokenBytes = 4096

// tokenLeeway tolerates clock skew between the token minter and this node.
const tokenLeeway = 5 * time.Second

// TokenClaims are what MintAdminToken puts in a token beyond the admin
// claims.
type TokenClaims struct {
	// Sub names the operator: the actor of the audit log. Required.
	Sub string
	// TTL is the lifetime: exp = iat + TTL. Required.
	TTL time.Duration
	// Role is AdminRole (the default when empty) or ViewerRole.
	Role string
	// Audience and Issuer become the aud and iss claims when set (what
	// Config.JWTAudience and JWTIssuer require).
	Audience string
	Issuer   string
}

// MintAdminToken mints a token of the admin secret: HS256 with secret,
// claims sub, admin: true, role (ADMIN or VIEWER), iat, exp, and aud and
// iss when c sets them.
func MintAdminToken(secret []byte, c TokenClaims) (string, error) {
	role := cmp.Or(c.Role, AdminRole)
	if role != AdminRole && role != ViewerRole {
		return "", fmt.Errorf("control: role %q is not %s or %s", role, AdminRole, ViewerRole)
	}
	if len(secret) == 0 {
		return "", errors.New("control: no admin secret")
	}
	if c.Sub == "" {
		return "", errors.New("control: an admin token needs a sub (who the audit log names)")
	}
	if c.TTL <= 0 {
		return "", fmt.Errorf("control: token ttl %s is not positive", c.TTL)
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"sub":   c.Sub,
		"admin": true,
		"role":  role,
		"iat":   now.Unix(),
		"exp":   now.Add(c.TTL).Unix(),
	}
	if c.Audience != "" {
		claims["aud"] = c.Audience
	}
	if c.Issuer != "" {
		claims["iss"] = c.Issuer
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// AdminToken mints an admin token for sub that lives ttl, without aud or
// iss: MintAdminToken(secret, TokenClaims{Sub: sub, TTL: ttl}).
func AdminToken(secret []byte, sub string, ttl time.Duration) (string, error) {
	return MintAdminToken(secret, TokenClaims{Sub: sub, TTL: ttl})
}

// RoleToken mints a token for sub with role (AdminRole or ViewerRole) that
// lives ttl, without aud or iss.
func RoleToken(secret []byte, sub, role string, ttl time.Duration) (string, error) {
	return MintAdminToken(secret, TokenClaims{Sub: sub, TTL: ttl, Role: role})
}

// authError is a refused authentication: the reply and the reason that
// goes to the log and the audit record (never the token).
type authError struct {
	*Error
	reason string
}

func unauthorized(msg, reason string) *authError {
	return &authError{&Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: msg}, reason}
}

func forbidden(msg string) *authError {
	return &authError{&Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: msg}, msg}
}

// verifyAdmin checks the Authorization header value. It returns the
// principal of a valid admin or viewer token; for a token whose signature
// verified but which lacks the claims (403) it also returns the sub, so the
// refusal names who tried.
func (s *Server) verifyAdmin(authorization string) (Principal, *authError) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		if authorization == "" {
			return Principal{}, unauthorized("an admin token is required (Authorization: Bearer <JWT>)", "no token")
		}
		return Principal{}, unauthorized("an admin token is required (Authorization: Bearer <JWT>)", "not a bearer token")
	}
	return s.verifyToken(strings.TrimSpace(tok))
}

// verifyToken checks a bare admin token (see verifyAdmin).
func (s *Server) verifyToken(tok string) (Principal, *authError) {
	if tok == "" {
		return Principal{}, unauthorized("an admin token is required", "no token")
	}
	if len(tok) > maxTokenBytes {
		return Principal{}, unauthorized("invalid token", "token over "+strconv.Itoa(maxTokenBytes)+" bytes")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(), jwt.WithLeeway(tokenLeeway)}
	if s.cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(s.cfg.JWTAudience))
	}
	if s.cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(s.cfg.JWTIssuer))
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return s.cfg.AdminSecret, nil }, opts...)
	if err != nil {
		// The signature is checked before the claims: only a token signed
		// with the admin secret gets a message more precise than "invalid
		// token".
		switch {
		case errors.Is(err, jwt.ErrTokenSignatureInvalid) && s.signedWithClientSecret(tok):
			return Principal{}, unauthorized("invalid token", "signed with the client secret: client tokens are not admin tokens")
		case errors.Is(err, jwt.ErrTokenExpired):
			return Principal{}, unauthorized("token expired", "expired")
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			return Principal{}, unauthorized("invalid token: exp is required", "no exp claim")
		case errors.Is(err, jwt.ErrTokenInvalidAudience):
			return Principal{}, unauthorized("invalid token: wrong audience", "aud is not "+strconv.Quote(s.cfg.JWTAudience))
		case errors.Is(err, jwt.ErrTokenInvalidIssuer):
			return Principal{}, unauthorized("invalid token: wrong issuer", "iss is not "+strconv.Quote(s.cfg.JWTIssuer))
		}
		return Principal{}, unauthorized("invalid token", reasonOf(err))
	}
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	if reason := overLifetime(exp, iat, s.cfg.JWTMaxTTL, time.Now()); reason != "" {
		return Principal{}, unauthorized("invalid token: it lives longer than this server accepts", reason)
	}
	sub, _ := claims["sub"].(string)
	p := Principal{Sub: sub}
	if admin, _ := claims["admin"].(bool); !admin {
		return p, forbidden("token lacks the claim admin: true")
	}
	p.Role, _ = claims["role"].(string)
	if p.Role != AdminRole && p.Role != ViewerRole {
		return p, forbidden(`token lacks the claim role: "ADMIN" or "VIEWER"`)
	}
	if sub == "" {
		return Principal{}, forbidden("token lacks a sub claim (the audit log must name the actor)")
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		p.Expires = exp.Time
	}
	return p, nil
}

// Authenticate verifies a bare admin token presented from ip (a
// dashboard's sign-in), under the same rules as the Authorization header:
// the token is verified first, the same 401 and 403, the same lockout of an
// address after repeated failures (429, with how long in RetryAfter), the
// same log line for a refusal (never the token). ip is what ClientIP
// returned. It is safe for concurrent use.
func (s *Server) Authenticate(ip, token string) (Principal, *Error) {
	if len(s.cfg.AdminSecret) == 0 {
		return Principal{}, adminDisabled()
	}
	p, aerr := s.verifyToken(strings.TrimSpace(token))
	if aerr == nil {
		return p, nil
	}
	addr, _ := netip.ParseAddr(ip)
	wasLocked, locked, left := s.auth.fail(lockoutKey(addr), time.Now())
	if wasLocked {
		return Principal{}, &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, RetryAfter: left,
			Message: "too many failed authentications from this address; retry later"}
	}
	s.log.Warn("admin authentication refused", "sourceIp", ip, "path", "dashboard sign-in",
		"status", aerr.Status, "reason", aerr.reason, "sub", p.Sub, "lockedOut", locked)
	return p, aerr.Error
}

// ReadOnlyAction reports whether an admin action only reads, and so is
// allowed to a VIEWER: every get_* action and the detailed health
// (health_details). Every other action, known or not, changes state or may.
func ReadOnlyAction(action string) bool {
	return strings.HasPrefix(action, "get_") || action == ActionHealthDetails
}

// viewerRefusal is the 403 a VIEWER gets for an action that changes state.
func viewerRefusal(action string) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeForbidden,
		Message: fmt.Sprintf("role VIEWER may not run %s: it changes state (VIEWER runs get_* actions only)", clip(action, 64))}
}

// overLifetime says why a token with exp and iat (nil when absent) lives
// longer than maxTTL at now, or "" when it does not (or maxTTL is 0): exp
// more than maxTTL after iat, or more than maxTTL from now (which also
// catches a token without iat or with one in the future).
func overLifetime(exp, iat *jwt.NumericDate, maxTTL time.Duration, now time.Time) string {
	if maxTTL <= 0 || exp == nil {
		return ""
	}
	if iat != nil && exp.Sub(iat.Time) > maxTTL+tokenLeeway {
		return fmt.Sprintf("minted for %s, over the maximum %s", exp.Sub(iat.Time), maxTTL)
	}
	if left := exp.Sub(now); left > maxTTL+tokenLeeway {
		return fmt.Sprintf("valid for %s more, over the maximum %s", left.Truncate(time.Second), maxTTL)
	}
	return ""
}

// signedWithClientSecret reports whether tok's HS256 signature verifies
// with the client secret (only to say so in the log).
func (s *Server) signedWithClientSecret(tok string) bool {
	if len(s.cfg.ClientSecret) == 0 {
		return false
	}
	_, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return s.cfg.ClientSecret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithoutClaimsValidation())
	return err == nil
}

// reasonOf names a jwt failure for the log, without the token.
func reasonOf(err error) string {
	for _, e := range []error{jwt.ErrTokenMalformed, jwt.ErrTokenSignatureInvalid, jwt.ErrTokenUnverifiable,
		jwt.ErrTokenNotValidYet, jwt.ErrTokenUsedBeforeIssued, jwt.ErrTokenInvalidClaims} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "invalid token"
}

// refusal is an admin request refused before a token verified as an
// admin's: the reply, why (for the log and the record only), the sub of a
// token whose signature verified but which lacks the admin claims, and
// what the lockout made of it.
type refusal struct {
	*Error
	reason string
	sub    string
	// retryAfter is set on a 429: how long the address stays locked out.
	retryAfter time.Duration
	// lockedOut: this failure locked its address out.
	lockedOut bool
	// quiet: the address was locked out already; the refusal is neither
	// recorded nor logged, only counted in the next line that is.
	quiet bool
}

// authenticate gates an admin request from ip: it returns the verified
// admin's sub, or the refusal. A valid admin token is always admitted;
// every other request counts as a failure of ip, and once ip is locked out
// it is answered 429.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, ip netip.Addr) (Principal, *refusal) {
	if len(s.cfg.AdminSecret) == 0 {
		return Principal{}, &refusal{Error: adminDisabled(), reason: "no admin secret"}
	}
	p, aerr := s.verifyAdmin(string(ctx.Request.Header.Peek("Authorization")))
	if aerr == nil {
		return p, nil
	}
	r := &refusal{Error: aerr.Error, reason: aerr.reason, sub: p.Sub}
	wasLocked, locked, left := s.auth.fail(lockoutKey(ip), time.Now())
	switch {
	case wasLocked:
		r.Error = &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited,
			Message: "too many failed authentications from this address; retry later"}
		r.retryAfter, r.quiet = left, true
	case locked:
		r.lockedOut = true
	}
	return Principal{}, r
}

// writeRefusal writes r with its headers.
func writeRefusal(ctx *fasthttp.RequestCtx, r *refusal) {
	refusalHeaders(ctx, r)
	writeError(ctx, r.Error)
}

// refusalHeaders sets the headers of r's reply: WWW-Authenticate on a 401,
// Retry-After on a 429.
func refusalHeaders(ctx *fasthttp.RequestCtx, r *refusal) {
	switch r.Status {
	case http.StatusUnauthorized:
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="sockmon-admin"`)
	case http.StatusTooManyRequests:
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(netcore.RetryAfterSeconds(r.retryAfter)))
	}
}

// lockoutKey is the key an address is locked out by: an IPv4 address
// itself, an IPv6 address by its /64 (one subscriber's allocation), so
// that one /64 is not an endless supply of fresh keys.
func lockoutKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// failLimiter counts failed authentications per address: AuthFailures
// within AuthFailureWindow (from the first failure) lock the address out
// until the window ends. A success clears nothing: an operator's request
// from behind the same NAT does not give the address its attempts back.
// It tracks at most tracked addresses, forgetting the one whose last
// failure is the oldest when a new one comes (never failing open: a
// flooding address stays the most recent). Safe for concurrent use; only
// refused admin requests touch it.
type failLimiter struct {
	mu      sync.Mutex
	max     int
	window  time.Duration
	tracked int
	ips     map[netip.Addr]*list.Element // of *failCount
	lru     list.List                    // front: the latest failure
}

type failCount struct {
	key   netip.Addr
	n     int
	start time.Time
}

// maxTrackedIPs bounds the addresses the lockout remembers.
const maxTrackedIPs = 10000

func newFailLimiter(max int, window time.Duration, tracked int) *failLimiter {
	return &failLimiter{max: max, window: window, tracked: tracked, ips: make(map[netip.Addr]*list.Element)}
}

// fail counts a failure from key at now. It reports whether key was
// locked out before it, whether it is after it, and how long the lockout
// has left.
func (l *failLimiter) fail(key netip.Addr, now time.Time) (wasLocked, locked bool, left time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var f *failCount
	if e := l.ips[key]; e != nil {
		f = e.Value.(*failCount)
		l.lru.MoveToFront(e)
		if now.Sub(f.start) >= l.window {
			f.n, f.start = 0, now
		}
	} else {
		if l.lru.Len() >= l.tracked {
			oldest := l.lru.Back()
			delete(l.ips, oldest.Value.(*failCount).key)
			l.lru.Remove(oldest)
		}
		f = &failCount{key: key, start: now}
		l.ips[key] = l.lru.PushFront(f)
	}
	wasLocked = f.n >= l.max
	if !wasLocked {
		f.n++
	}
	return wasLocked, f.n >= l.max, l.window - now.Sub(f.start)
}

// len is the number of addresses tracked.
func (l *failLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
