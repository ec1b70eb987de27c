package control

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Admin authentication: Authorization: Bearer
// <JWT>, HS256 with the admin secret and nothing else, claims admin: true,
// role: "ADMIN" or "VIEWER", a sub (the actor of the audit log) and an exp.
// 401 for a missing or invalid token, 403 for a valid token without the
// claims, 429 once an IP has failed too often, 503 when no admin secret is
// configured. A VIEWER reads everything (the admin GET, the detailed
// health, every get_* action, the dashboard) and is refused every action
// that changes state with 403 (ReadOnlyAction).

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

// AdminToken mints an admin token: HS256 with secret, claims sub, admin:
// true, role: "ADMIN", iat and exp = now + ttl.
func AdminToken(secret []byte, sub string, ttl time.Duration) (string, error) {
	return RoleToken(secret, sub, AdminRole, ttl)
}

// RoleToken mints a token of the admin secret with role AdminRole or
// ViewerRole: HS256 with secret, claims sub, admin: true, role, iat and
// exp = now + ttl.
func RoleToken(secret []byte, sub, role string, ttl time.Duration) (string, error) {
	if role != AdminRole && role != ViewerRole {
		return "", fmt.Errorf("control: role %q is not %s or %s", role, AdminRole, ViewerRole)
	}
	if len(secret) == 0 {
		return "", errors.New("control: no admin secret")
	}
	if sub == "" {
		return "", errors.New("control: an admin token needs a sub (who the audit log names)")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("control: token ttl %s is not positive", ttl)
	}
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":   sub,
		"admin": true,
		"role":  role,
		"iat":   now.Unix(),
		"exp":   now.Add(ttl).Unix(),
	}).SignedString(secret)
}

// authError is a refused authentication: the reply and the reason that
// goes to the log (never the token).
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
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return s.cfg.AdminSecret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(), jwt.WithLeeway(tokenLeeway))
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return Principal{}, unauthorized("token expired", "expired")
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			return Principal{}, unauthorized("invalid token: exp is required", "no exp claim")
		case s.signedWithClientSecret(tok):
			return Principal{}, unauthorized("invalid token: client tokens are not admin tokens", "signed with the client secret")
		}
		return Principal{}, unauthorized("invalid token", reasonOf(err))
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
// the same 401 and 403, the same lockout of an IP after repeated failures
// (429, with how long in RetryAfter), the same log line for a refusal
// (never the token). It is safe for concurrent use.
func (s *Server) Authenticate(ip, token string) (Principal, *Error) {
	if len(s.cfg.AdminSecret) == 0 {
		return Principal{}, adminDisabled()
	}
	now := time.Now()
	if blocked, left := s.auth.blocked(ip, now); blocked {
		return Principal{}, &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, RetryAfter: left,
			Message: "too many failed authentications from this address; retry later"}
	}
	p, aerr := s.verifyToken(strings.TrimSpace(token))
	if aerr != nil {
		s.auth.fail(ip, now)
		s.log.Warn("admin authentication refused", "sourceIp", ip, "path", "dashboard sign-in",
			"status", aerr.Status, "reason", aerr.reason, "sub", p.Sub)
		return p, aerr.Error
	}
	s.auth.succeed(ip)
	return p, nil
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

// failLimiter counts failed authentications per source IP: AuthFailures
// within AuthFailureWindow (from the first failure) lock the IP out until
// the window ends. A success clears the IP's count. It tracks at most
// maxTracked IPs, forgetting expired ones when full. Safe for concurrent
// use; it is only touched by admin requests.
type failLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	ips    map[string]*failCount
}

type failCount struct {
	n     int
	start time.Time
}

const maxTracked = 10000

func newFailLimiter(max int, window time.Duration) *failLimiter {
	return &failLimiter{max: max, window: window, ips: make(map[string]*failCount)}
}

// blocked reports whether ip is locked out at now, and for how long.
func (l *failLimiter) blocked(ip string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.ips[ip]
	if f == nil {
		return false, 0
	}
	if now.Sub(f.start) >= l.window {
		delete(l.ips, ip)
		return false, 0
	}
	if f.n >= l.max {
		return true, l.window - now.Sub(f.start)
	}
	return false, 0
}

// fail counts a failure from ip at now.
func (l *failLimiter) fail(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.ips[ip]
	if f != nil && now.Sub(f.start) >= l.window {
		f = nil
	}
	if f == nil {
		if len(l.ips) >= maxTracked {
			for k, v := range l.ips {
				if now.Sub(v.start) >= l.window {
					delete(l.ips, k)
				}
			}
			if len(l.ips) >= maxTracked {
				return
			}
		}
		f = &failCount{start: now}
		l.ips[ip] = f
	}
	f.n++
}

// succeed clears ip's failures.
func (l *failLimiter) succeed(ip string) {
	l.mu.Lock()
	delete(l.ips, ip)
	l.mu.Unlock()
}
