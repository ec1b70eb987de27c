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
// role: "ADMIN", a sub (the actor of the audit log) and an exp. 401 for a
// missing or invalid token, 403 for a valid token without the claims, 429
// once an IP has failed too often, 503 when no admin secret is configured.

// AdminRole is the role claim an admin token carries.
const AdminRole = "ADMIN"

// maxTokenBytes bounds the token parsed: anything longer is refused
// without being decoded.
const maxTokenBytes = 4096

// tokenLeeway tolerates clock skew between the token minter and this node.
const tokenLeeway = 5 * time.Second

// AdminToken mints an admin token: HS256 with secret, claims sub, admin:
// true, role: "ADMIN", iat and exp = now + ttl.
func AdminToken(secret []byte, sub string, ttl time.Duration) (string, error) {
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
		"role":  AdminRole,
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

// verifyAdmin checks the Authorization header value. It returns the sub
// of a valid admin token; for a token whose signature verified but which
// lacks the claims (403) it also returns the sub, so the refusal names who
// tried.
func (s *Server) verifyAdmin(authorization string) (string, *authError) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		if authorization == "" {
			return "", unauthorized("an admin token is required (Authorization: Bearer <JWT>)", "no token")
		}
		return "", unauthorized("an admin token is required (Authorization: Bearer <JWT>)", "not a bearer token")
	}
	tok = strings.TrimSpace(tok)
	if len(tok) > maxTokenBytes {
		return "", unauthorized("invalid token", "token over "+strconv.Itoa(maxTokenBytes)+" bytes")
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return s.cfg.AdminSecret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(), jwt.WithLeeway(tokenLeeway))
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return "", unauthorized("token expired", "expired")
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			return "", unauthorized("invalid token: exp is required", "no exp claim")
		case s.signedWithClientSecret(tok):
			return "", unauthorized("invalid token: client tokens are not admin tokens", "signed with the client secret")
		}
		return "", unauthorized("invalid token", reasonOf(err))
	}
	sub, _ := claims["sub"].(string)
	if admin, _ := claims["admin"].(bool); !admin {
		return sub, forbidden("token lacks the claim admin: true")
	}
	if role, _ := claims["role"].(string); role != AdminRole {
		return sub, forbidden(`token lacks the claim role: "ADMIN"`)
	}
	if sub == "" {
		return "", forbidden("token lacks a sub claim (the audit log must name the actor)")
	}
	return sub, nil
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
